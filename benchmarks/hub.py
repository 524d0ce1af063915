"""hub3d servers and jobs for the benchmarks: start on loopback, submit, wait, find workers."""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import free_port, start, stop

__all__ = ["Hub", "b64", "hub_server"]

TERMINAL = ("completed", "failed", "canceled")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Hub:
    url: str
    pid: int
    data_dir: Path
    session: requests.Session

    def submit(self, body: dict[str, Any]) -> str:
        r = self.session.post(f"{self.url}/generate", json=body, timeout=60)
        r.raise_for_status()
        return str(r.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.session.get(f"{self.url}/job/{job_id}", timeout=30)
        r.raise_for_status()
        return dict(r.json())

    def wait_all(self, job_ids: list[str], timeout: float = 600,
                 poll_s: float = 0.1) -> list[dict[str, Any]]:
        """Wait for every job. Asks about one job at a time, the oldest unfinished one (jobs
        finish in about the order queued), so the waiting takes no CPU from the server."""
        end, done = time.monotonic() + timeout, {}
        pending = list(job_ids)
        while pending:
            if time.monotonic() > end:
                raise TimeoutError(f"{len(pending)} jobs not finished")
            if (job := self.job(pending[0]))["status"] in TERMINAL:
                done[pending.pop(0)] = job
                continue
            time.sleep(poll_s)
        return [done[j] for j in job_ids]

    def worker_pids(self) -> dict[str, int]:
        """'model/device/slot' → pid of each running worker."""
        pids = {}
        for model in self.session.get(f"{self.url}/models", timeout=30).json():
            for i, worker in enumerate(model["workers"]):
                if worker.get("pid"):
                    key = f"{model['name']}/{worker.get('device', '?')}/{i}"
                    pids[key] = int(worker["pid"])
        return pids


@contextmanager
def hub_server(*args: str, data_dir: Path | None = None) -> Iterator[Hub]:
    """`python -m hub3d serve ARGS` on a free loopback port, stopped (SIGTERM) at the end."""
    port = free_port()
    data = data_dir or Path(tempfile.mkdtemp(prefix="hub3d-bench-")) / "data"
    url = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "hub3d", "serve", "--port", str(port), "--data-dir",
                  str(data), *args], url)
    try:
        with requests.Session() as session:
            yield Hub(url, proc.pid, data, session)
    finally:
        stop(proc)
