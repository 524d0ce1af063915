"""Real hub3d servers on 127.0.0.1 for tests: a subprocess, or in-process (uvicorn thread)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, deadline_s: float = 30.0, headers: dict[str, str] | None = None,
                 proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = requests.get(f"{url}/health", headers=headers, timeout=2)
            if r.ok and r.json()["status"] in ("healthy", "degraded"):
                return r.json()
            last = r.text
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"server at {url} not healthy after {deadline_s} s: {last}")


def wait_done(url: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it ends; its last view."""
    end = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < end:
        job = requests.get(f"{url}/job/{job_id}", timeout=5).json()
        if job["status"] in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout} s")


@dataclass
class ServerProcess:
    """`python -m hub3d serve …` in its own process group."""

    data_dir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, deadline_s: float = 30.0) -> ServerProcess:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, **self.env}
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub3d", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.args],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        key = self.env.get("HUB3D_API_KEY")
        wait_healthy(self.url, deadline_s, {"X-API-Key": key} if key else None, self.proc)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """kill -9 the whole process group: server and its workers, like a culled kernel."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class InProcessServer:
    """create_app(settings, **seams) under uvicorn in a daemon thread (seams: vram_probe …)."""

    def __init__(self, settings: Any, **seams: Any) -> None:
        import uvicorn

        from hub3d.api.app import create_app

        self.port = settings.port
        self.app = create_app(settings, **seams)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="asyncio",
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        wait_healthy(self.url, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
