"""One model worker child process, driven from the control plane's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from hub3d.workers.protocol import (
    Done,
    Exit,
    Failed,
    FromWorker,
    LoadFailed,
    Loading,
    ProtocolError,
    Ready,
    Run,
    Stage,
    decode,
    encode,
)

__all__ = ["ModelLoadFailed", "WorkerDied", "WorkerProcess", "describe_exit"]

# hub3d's own source dir, so a worker in another Python env (SAM-3D) can import it.
_SRC_ROOT = str(Path(__file__).resolve().parents[2])
_LOG_ROTATE_BYTES = 5 * 1024 * 1024

StageCallback = Callable[[str, str], None]


class WorkerDied(Exception):
    """The worker process ended while it held a job."""


class ModelLoadFailed(Exception):
    """The backend raised in `load()`; the message is the backend's reason."""


def describe_exit(returncode: int | None, log_tail: str = "") -> str:
    if returncode is not None and returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if signum == signal.SIGKILL:
            reason = f"model worker died (signal {signum}) — likely out of memory"
        elif signum == signal.SIGSEGV:
            reason = f"model worker crashed (signal {signum}, {name}: segmentation fault)"
        else:
            reason = f"model worker died (signal {signum}, {name})"
    else:
        reason = f"model worker exited unexpectedly (exit code {returncode})"
    if log_tail and returncode != -signal.SIGKILL:  # after a SIGKILL the log tail is unrelated
        return f"{reason}; last log line: {log_tail}"
    return reason


class WorkerProcess:
    def __init__(
        self,
        *,
        model_spec: str,
        device: str,
        python: str | None,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_spec, self.device = model_spec, device
        self.python = python or sys.executable
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.info: Ready | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_SRC_ROOT, env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        env["HUB3D_PARENT_PID"] = str(os.getpid())  # the worker ends when this process does
        if self.device.startswith("cuda"):
            # One GPU per worker: the model sees its card as cuda:0.
            env["CUDA_VISIBLE_DEVICES"] = self.device.partition(":")[2] or "0"
        env.update(self.extra_env)
        return env

    def _child_device(self) -> str:
        return "cuda:0" if self.device.startswith("cuda") else self.device

    async def start(self) -> Ready:
        """Spawn and wait until the model is loaded; raises ModelLoadFailed or WorkerDied."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        with open(self.log_path, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "hub3d.workers.child",
                "--model", self.model_spec, "--device", self._child_device(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env=self._env(), start_new_session=True,
            )
        while True:
            msg = await self._read()
            if isinstance(msg, Ready):
                self.info = msg
                return msg
            if isinstance(msg, LoadFailed):
                await self._reap()
                raise ModelLoadFailed(msg.error)
            if not isinstance(msg, Loading):
                await self._unexpected(msg, " while loading")

    async def run(self, request: Run, on_stage: StageCallback) -> Done | Failed:
        """Send one job; return how it ended. Raises WorkerDied."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode(request))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self._raise_died()
        while True:
            msg = await self._read()
            if isinstance(msg, Stage):
                on_stage(msg.stage, msg.message)
            elif isinstance(msg, (Done, Failed)):
                if isinstance(msg, Failed) and msg.restart:
                    await self.stop()
                return msg
            else:
                await self._unexpected(msg, f" while running job {request.job_id}")

    async def _read(self) -> FromWorker:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            await self._raise_died()
        try:
            msg = decode(line)
        except ProtocolError as exc:
            await self._unexpected(exc, "")
        if not isinstance(msg, (Loading, Ready, LoadFailed, Stage, Done, Failed)):
            await self._unexpected(msg, " (a message meant for the worker)")
        return msg

    async def _unexpected(self, what: object, when: str) -> NoReturn:
        """A worker that breaks the protocol cannot be trusted with the next job: end it."""
        self.kill()
        await self._reap()
        raise WorkerDied(f"model worker broke the protocol{when}: {str(what)[:200]}")

    async def _raise_died(self) -> NoReturn:
        await self._reap()
        raise WorkerDied(describe_exit(self.proc.returncode if self.proc else None,
                                       self.log_tail()))

    async def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(self.proc.wait(), timeout=10)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 2048))
                lines = fh.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip()[:300] if lines else ""

    def kill(self) -> None:
        if self.alive and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not (freeing its memory for sure)."""
        if not self.alive or self.proc is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(encode(Exit()))
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self._reap()
