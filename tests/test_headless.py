"""`hub3d restart | status | stop` on the real notebook run by papermill under setsid: jobs
queued before a restart complete after it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import make_png
from tests.notebook_env import REPO, notebook_env
from tests.servers import free_port

SLOW = "slow=tests.backends.testing:SlowBackend"
KEY = "headless-test-key"


def hub3d(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub3d", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def start_run(env: dict[str, str], data: Path, port: int) -> subprocess.CompletedProcess:
    """`hub3d restart` of the server notebook, headless: the slow test backend, an API key."""
    return hub3d(env, "restart", "--notebook", str(REPO / "sf3d_api_server.ipynb"),
                 "--kernel", "python3", "--timeout", "180", "-p", "MODELS", SLOW,
                 "-p", "PORT", str(port), "-p", "DATA_DIR", str(data), "-p", "TUNNEL", "none",
                 "-p", "SAMPLE", "False", "-p", "API_KEY", KEY)


def submit_slow(url: str, count: int, sleep_s: float) -> list[str]:
    """`count` multipart submissions of the slow backend (seeds 0…); their job ids."""
    ids = []
    for seed in range(count):
        r = requests.post(f"{url}/generate", headers={"X-API-Key": KEY}, timeout=30,
                          files={"image": ("x.png", make_png(), "image/png")},
                          data={"seed": str(seed), "sleep_s": str(sleep_s)})
        assert r.status_code == 202, r.text
        ids.append(r.json()["job_id"])
    return ids


@pytest.mark.slow
def test_restart_while_jobs_are_queued(tmp_path: Path) -> None:
    env, data, port = notebook_env(tmp_path), tmp_path / "data", free_port()
    url, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    first = start_run(env, data, port)
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"hub3d healthy at {url}" in first.stdout
        state = json.loads((data / "headless" / "run.json").read_text())
        first_pid, first_log = state["pid"], Path(state["log"])
        assert psutil.Process(first_pid).status() != psutil.STATUS_ZOMBIE
        assert state["params"]["BLOCK"] == "True"
        ids = submit_slow(url, 4, 1.5)
        queued = requests.get(f"{url}/queue", headers=headers, timeout=10).json()
        assert queued["queued"] >= 2  # the restart below happens with jobs waiting

        second = hub3d(env, "restart", "--data-dir", str(data), "--timeout", "180")
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"stopped run pid {first_pid}" in second.stdout
        assert not psutil.pid_exists(first_pid) or \
            psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
        assert "hub3d stopped (terminated)" in first_log.read_text()  # the clean path

        deadline = time.monotonic() + 120
        jobs: list[dict] = []
        while time.monotonic() < deadline:
            jobs = [requests.get(f"{url}/job/{i}", headers=headers, timeout=10).json()
                    for i in ids]
            if all(j["status"] in ("completed", "failed", "canceled") for j in jobs):
                break
            time.sleep(0.5)
        assert [j["status"] for j in jobs] == ["completed"] * 4, jobs

        status = hub3d(env, "status", "--data-dir", str(data), "--json")
        assert status.returncode == 0, status.stdout
        assert json.loads(status.stdout)["health"] == "healthy"
    finally:
        state_file = data / "headless" / "run.json"
        tree = []
        if state_file.is_file():
            pid = json.loads(state_file.read_text())["pid"]
            tree = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))] \
                if psutil.pid_exists(pid) else []
        stop = hub3d(env, "stop", "--data-dir", str(data), timeout=90)
    assert stop.returncode == 0 and "stopped run pid" in stop.stdout, stop.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)
    alive = [p for p in tree if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []  # papermill, the kernel and the model workers are all gone
    assert hub3d(env, "status", "--data-dir", str(data)).returncode == 1


def test_restart_reports_a_broken_run_with_its_log(tmp_path: Path) -> None:
    env, data = notebook_env(tmp_path), tmp_path / "data"
    out = hub3d(env, "restart", "--notebook", str(REPO / "sf3d_api_server.ipynb"),
                "--kernel", "python3", "--timeout", "120", "-p", "MODELS", "inflate",
                "-p", "PORT", str(free_port()), "-p", "DATA_DIR", str(data),
                "-p", "TUNNEL", "vpn")
    assert out.returncode == 1
    assert "ended (exit" in out.stdout and "TUNNEL must be" in out.stdout


def test_restart_without_a_notebook_says_so(tmp_path: Path) -> None:
    out = hub3d(notebook_env(tmp_path), "restart", "--data-dir", str(tmp_path),
                "--notebook", str(tmp_path / "missing.ipynb"))
    assert out.returncode == 2 and "not found" in out.stdout


def test_watch_and_stop_without_a_run(tmp_path: Path) -> None:
    env = notebook_env(tmp_path)
    watch = hub3d(env, "watch", "--data-dir", str(tmp_path), "--interval", "0.1", timeout=30)
    assert watch.returncode == 1 and "hub3d restart" in watch.stdout
    stop = hub3d(env, "stop", "--data-dir", str(tmp_path), timeout=30)
    assert stop.returncode == 0 and "no headless run recorded" in stop.stdout


@pytest.mark.slow
def test_watch_brings_a_killed_run_back_and_its_jobs_finish(tmp_path: Path) -> None:
    """A cull or crash: the whole headless run (papermill, kernel, workers) is killed with -9
    while jobs wait; `hub3d watch` sees /health fail, restarts it, and every job completes."""
    env, data, port = notebook_env(tmp_path), tmp_path / "data", free_port()
    url, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    first = start_run(env, data, port)
    assert first.returncode == 0, first.stdout + first.stderr
    state_file = data / "headless" / "run.json"
    watch = None
    try:
        ids = submit_slow(url, 3, 2)
        first_pid = json.loads(state_file.read_text())["pid"]
        run = psutil.Process(first_pid)
        for proc in [run, *run.children(recursive=True)]:
            proc.kill()
        watch = subprocess.Popen(
            [sys.executable, "-m", "hub3d", "watch", "--data-dir", str(data), "--interval",
             "0.5", "--failures", "2", "--max-restarts", "1", "--timeout", "180"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline, jobs = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            try:
                jobs = [requests.get(f"{url}/job/{i}", headers=headers, timeout=5).json()
                        for i in ids]
            except requests.ConnectionError:
                jobs = []  # down until the watch has restarted it
            if jobs and all(j["status"] in ("completed", "failed", "canceled") for j in jobs):
                break
            assert watch.poll() is None, watch.stdout.read() if watch.stdout else ""
            time.sleep(0.5)
        assert [j["status"] for j in jobs] == ["completed"] * 3, jobs
        assert json.loads(state_file.read_text())["pid"] != first_pid  # a new run serves them
    finally:
        if watch is not None:
            watch.terminate()
            out, _ = watch.communicate(timeout=30)
            assert "restarting" in out, out
        stop = hub3d(env, "stop", "--data-dir", str(data), timeout=90)
    assert stop.returncode == 0, stop.stdout + stop.stderr
