"""`hub3d restart | stop | status | watch`: the server notebook run headless by papermill.

`restart` stops the previous run, waits for the port to free, starts papermill in a new session
(`BLOCK=True` keeps the kernel serving), records it in `<data dir>/headless/run.json` and polls
`/health`. Jobs live in the data dir's store, so those queued before a restart run after it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hub3d.config import data_dir_from_env
from hub3d.notebook.ports import port_holder, port_is_free
from hub3d.notebook.server import RUNNING_MARK

__all__ = ["health", "register", "restart", "stop_run"]

NOTEBOOK = "sf3d_api_server.ipynb"


def _state_dir(data_dir: Path) -> Path:
    return data_dir / "headless"


def _load(data_dir: Path) -> dict[str, Any] | None:
    path = _state_dir(data_dir) / "run.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _data_dir(args: argparse.Namespace, params: dict[str, str] | None = None) -> Path:
    return data_dir_from_env((params or {}).get("DATA_DIR") or args.data_dir)


def health(port: int, timeout: float = 3.0) -> dict[str, Any] | None:
    import requests

    from hub3d.activity import MONITOR_HEADER

    try:  # a monitor's check: not use, so it keeps nothing alive
        r = requests.get(f"http://127.0.0.1:{port}/health", timeout=timeout,
                         headers={MONITOR_HEADER: "headless"})
        return dict(r.json()) if r.ok else None
    except (requests.RequestException, ValueError):
        return None


def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stop_run(data_dir: Path, grace_s: float = 30.0) -> str:
    """Stop the recorded run: SIGTERM to the kernel (its last cell stops the server cleanly and
    papermill finishes), then SIGKILL whatever of the process tree is left after `grace_s`."""
    import psutil

    state = _load(data_dir)
    if not state:
        return "no headless run recorded"
    procs = _tree(int(state["pid"]))
    if not procs:
        (_state_dir(data_dir) / "run.json").unlink(missing_ok=True)
        return f"pid {state['pid']} had already ended"
    for kernel in procs[0].children():  # the kernel runs in its own session: signal it directly
        try:
            kernel.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)
    (_state_dir(data_dir) / "run.json").unlink(missing_ok=True)
    how = f"{len(alive)} killed after {grace_s:.0f} s" if alive else "cleanly"
    return f"stopped run pid {state['pid']} (port {state['port']}) {how}"


def reach_lines(port: int, data_dir: Path) -> list[str]:
    """Where the laptop finds this server through the hub proxy, and its client line."""
    from hub3d.notebook.urls import hub_proxy_url, proxy_root_path

    root = proxy_root_path(port)
    if not root:
        return []
    url = hub_proxy_url(port) or f"https://YOUR-HUB{root}/"
    key = "" if not (data_dir / "api_key").is_file() else ' --api-key="$HUB3D_API_KEY"'
    return [f"through the hub: {url}",
            f"laptop: python sf3d_client.py photo.png --server {url.rstrip('/')}"
            f' --hub-token "$JUPYTERHUB_TOKEN"{key}'
            + (f"   (HUB3D_API_KEY is in {data_dir / 'api_key'})" if key else "")]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def restart(notebook: Path, params: dict[str, str], data_dir: Path, kernel: str | None,
            timeout_s: float = 300.0, grace_s: float = 30.0) -> int:
    port = int(params.get("PORT", os.environ.get("PORT", "9299")))
    print(stop_run(data_dir, grace_s), flush=True)
    deadline = time.monotonic() + 30
    while not port_is_free(port):
        if time.monotonic() > deadline:
            print(f"port {port} is still in use by {port_holder(port) or 'another process'}: "
                  "stop it, or pass -p PORT <another>")
            return 1
        time.sleep(0.2)
    state_dir = _state_dir(data_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log, output = state_dir / f"run-{stamp}.log", state_dir / f"{notebook.stem}.{stamp}.ipynb"
    params = {**params, "PORT": str(port), "DATA_DIR": str(data_dir), "BLOCK": "True"}
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(output), "--log-output",
           "--no-progress-bar", "--cwd", str(notebook.parent)]
    if kernel:
        cmd += ["-k", kernel]
    for name, value in params.items():
        cmd += ["-p", name, value]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # setsid: survives the terminal
    state = {"pid": proc.pid, "port": port, "notebook": str(notebook), "params": params,
             "kernel": kernel, "log": str(log), "output": str(output), "started_at": time.time()}
    (state_dir / "run.json").write_text(json.dumps(state, indent=2))
    print(f"started papermill pid {proc.pid}; log {log}", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the notebook run ended (exit {proc.returncode}) before the server was "
                  f"healthy. Last lines of {log}:\n{_tail(log)}")
            return 1
        h = health(port)
        # healthy, and the notebook has reached its blocking cell (its first heartbeat line)
        if h and h.get("status") in ("healthy", "degraded") and RUNNING_MARK in _tail(log, 400):
            print(f"hub3d {h['status']} at http://127.0.0.1:{port} (pid {proc.pid})")
            print("\n".join(reach_lines(port, data_dir)))
            return 0
        time.sleep(0.5)
    print(f"not healthy after {timeout_s:.0f} s; last lines of {log}:\n{_tail(log)}")
    return 1


def _params(pairs: list[list[str]] | None) -> dict[str, str]:
    return {name: value for name, value in (pairs or [])}


def _restart(args: argparse.Namespace) -> int:
    params = _params(args.param)
    previous = _load(_data_dir(args, params))
    if previous and not args.param and not args.notebook:  # plain `hub3d restart`: same run
        params = {k: v for k, v in previous["params"].items() if k != "BLOCK"}
    notebook = Path(args.notebook or (previous or {}).get("notebook") or NOTEBOOK)
    if not notebook.is_file():
        print(f"notebook {notebook} not found: pass --notebook PATH/{NOTEBOOK}")
        return 2
    kernel = args.kernel or (previous or {}).get("kernel")
    return restart(notebook.resolve(), params, _data_dir(args, params), kernel, args.timeout,
                   args.grace)


def _stop(args: argparse.Namespace) -> int:
    print(stop_run(_data_dir(args), args.grace))
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _load(_data_dir(args))
    if not state:
        print("no headless run recorded (start one with `hub3d restart`)")
        return 1
    alive = bool(_tree(int(state["pid"])))
    h = health(int(state["port"]))
    info = {"pid": state["pid"], "running": alive, "port": state["port"],
            "health": (h or {}).get("status", "unreachable"), "log": state["log"],
            "output": state["output"], "params": state["params"]}
    reach = reach_lines(int(state["port"]), _data_dir(args))
    if reach:
        info["hub_url"] = reach[0].split(": ", 1)[1]
        info["client"] = reach[1].split(": ", 1)[1]
    print(json.dumps(info, indent=2) if args.json else "\n".join(
        f"{k:>8}: {v}" for k, v in info.items()))
    return 0 if alive and h else 1


def _watch(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    failures = restarts = 0
    while True:
        state = _load(data_dir)
        if not state:
            print("no headless run recorded: start one with `hub3d restart` first")
            return 1
        h = health(int(state["port"]))
        failures = 0 if h else failures + 1
        if failures >= args.failures:
            if args.max_restarts and restarts >= args.max_restarts:
                print(f"/health failed {failures} times and {restarts} restarts are used up")
                return 1
            print(f"[{time.strftime('%H:%M:%S')}] /health failed {failures} times: restarting",
                  flush=True)
            restarts += 1
            failures = 0
            params = {k: v for k, v in state["params"].items() if k != "BLOCK"}
            restart(Path(state["notebook"]), params, data_dir, state.get("kernel"),
                    args.timeout, args.grace)
        time.sleep(args.interval)


def register(subparsers: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", dest="data_dir", help="env HUB3D_DATA_DIR, ~/hub3d-data")
        p.add_argument("--grace", type=float, default=30.0,
                       help="seconds for a clean stop before killing (default 30)")

    p = subparsers.add_parser("restart", help="(re)start the server notebook headless")
    p.add_argument("--notebook", help=f"default: the last run's, else ./{NOTEBOOK}")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="notebook parameter, e.g. -p MODELS sf3d -p PORT 9299")
    p.add_argument("--kernel", help="kernelspec name (default: the notebook's own)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for /health")
    common(p)
    p.set_defaults(func=_restart)
    p = subparsers.add_parser("stop", help="stop the headless server run")
    common(p)
    p.set_defaults(func=_stop)
    p = subparsers.add_parser("status", help="the headless run: pid, health, log")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=_status)
    p = subparsers.add_parser("watch", help="restart the headless run when /health keeps failing")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between checks")
    p.add_argument("--failures", type=int, default=3, help="failed checks before a restart")
    p.add_argument("--max-restarts", dest="max_restarts", type=int, default=0,
                   help="give up after this many restarts (0: never)")
    p.add_argument("--timeout", type=float, default=300.0)
    common(p)
    p.set_defaults(func=_watch)
