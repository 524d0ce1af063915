"""Cold start to a healthy /health: `start_server()` in a fresh interpreter, `hub3d serve`, and the
server notebook run all by papermill. Each measured from the process launch (imports included).

Targets: 1 s / 1.5 s / 20 s.

    python -m benchmarks.cold_start [--repeat 5] [--notebook-repeat 2] [--models inflate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.common import REPO, free_port, save, stop, table

_IN_KERNEL = """
import sys, time
from hub3d.notebook.server import start_server
start_server(port={port}, models={models!r}, data_dir={data!r})
print("started", flush=True)
time.sleep(600)
"""


def _until_healthy(url: str, proc: subprocess.Popen[bytes], t0: float, deadline: float) -> float:
    while time.perf_counter() - t0 < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before it was healthy")
        try:
            r = requests.get(f"{url}/health", timeout=1)
            if r.ok and r.json().get("status") == "healthy":
                return time.perf_counter() - t0
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"not healthy after {deadline} s")


def _timed(cmd: list[str], port: int, deadline: float) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _until_healthy(f"http://127.0.0.1:{port}", proc, t0, deadline)
    finally:
        stop(proc)


def start_server_cmd(port: int, data: Path, models: str) -> list[str]:
    code = _IN_KERNEL.format(port=port, models=models, data=str(data))
    return [sys.executable, "-c", code]


def serve_cmd(port: int, data: Path, models: str) -> list[str]:
    return [sys.executable, "-m", "hub3d", "serve", "--port", str(port), "--models", models,
            "--data-dir", str(data)]


def notebook_cmd(port: int, data: Path, models: str) -> list[str]:
    out = data.parent / "run.ipynb"
    params = {"PORT": str(port), "MODELS": models, "TUNNEL": "none", "DATA_DIR": str(data),
              "SAMPLE": "False", "BLOCK": "True"}
    flags = [arg for k, v in params.items() for arg in ("-r" if k in ("MODELS", "TUNNEL",
             "DATA_DIR") else "-p", k, v)]
    return [sys.executable, "-m", "papermill", str(REPO / "sf3d_api_server.ipynb"), str(out),
            *flags]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--notebook-repeat", type=int, default=2)
    ap.add_argument("--models", default="inflate")
    args = ap.parse_args()
    paths = [("start_server()", start_server_cmd, args.repeat, 1.0, 30.0),
             ("hub3d serve", serve_cmd, args.repeat, 1.5, 30.0),
             ("papermill Run-All", notebook_cmd, args.notebook_repeat, 20.0, 180.0)]
    rows = []
    for name, build, repeat, target, deadline in paths:
        runs = []
        for _ in range(repeat):
            port, data = free_port(), Path(tempfile.mkdtemp(prefix="hub3d-cold-")) / "data"
            runs.append(_timed(build(port, data, args.models), port, deadline))
        rows.append({"path": name, "runs": repeat, "median_s": round(statistics.median(runs), 3),
                     "min_s": round(min(runs), 3), "max_s": round(max(runs), 3),
                     "target_s": target, "met": statistics.median(runs) <= target})
    print(f"cold start to a healthy /health, models={args.models}, {os.cpu_count()} CPUs\n")
    print(table(rows, ["path", "runs", "median_s", "min_s", "max_s", "target_s", "met"]))
    path = save("cold_start", {"models": args.models, "rows": rows})
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
