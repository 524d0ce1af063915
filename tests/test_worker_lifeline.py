"""A busy worker ends with its control plane (a kernel restart or a server stop kills the
control plane; the worker, in its own session, would otherwise hold the GPU until its job ends)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import psutil
import requests

from tests.conftest import TEST_MODELS
from tests.servers import ServerProcess


def _busy_worker(srv: ServerProcess, png_b64: str) -> psutil.Process:
    r = requests.post(f"{srv.url}/generate", json={"image": png_b64, "model": "slow",
                                                    "sleep_s": 120}, timeout=30)
    assert r.status_code == 202, r.text
    end = time.monotonic() + 30
    while time.monotonic() < end:
        job = requests.get(f"{srv.url}/job/{r.json()['job_id']}", timeout=5).json()
        if job["stage"] == "inference":  # loaded, and asleep in the job
            break
        time.sleep(0.1)
    assert srv.proc is not None
    (worker,) = [p for p in psutil.Process(srv.proc.pid).children(recursive=True)
                 if "hub3d.workers" in " ".join(p.cmdline())]
    return worker


def test_busy_worker_dies_with_a_killed_control_plane(
        start_server: Callable[..., ServerProcess], png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    worker = _busy_worker(srv, png_b64)
    assert srv.proc is not None
    os.kill(srv.proc.pid, signal.SIGKILL)  # only the control plane, as the OOM killer would
    srv.proc.wait(10)
    try:
        worker.wait(10)
    except psutil.TimeoutExpired:
        worker.kill()
        raise AssertionError("the worker outlived its control plane mid-job") from None
