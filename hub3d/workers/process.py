"""One model worker child process, driven from the control plane's event loop.

After it is loaded, one reader task reads its messages and hands each to the job it names, so
several jobs can run on one worker at once. A worker that breaks the protocol is killed: every
job it held ends with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub3d.workers.protocol import (
    Cancel,
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

log = logging.getLogger("hub3d.workers")

# hub3d's own source dir, so a worker in another Python env (SAM-3D) can import it.
_SRC_ROOT = str(Path(__file__).resolve().parents[2])
_LOG_ROTATE_BYTES = 5 * 1024 * 1024

StageCallback = Callable[[str, str], None]


class WorkerDied(Exception):
    """The worker process ended (or was ended) while it held a job.

    `broken`: it broke the protocol (a bug, not a crash). `requeue`: the job was not the cause
    (its worker was ended for another job), so it may run again elsewhere."""

    def __init__(self, message: str, *, broken: bool = False, requeue: bool = False) -> None:
        super().__init__(message)
        self.broken, self.requeue = broken, requeue


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


@dataclass
class _Pending:
    future: asyncio.Future[Done | Failed]
    on_stage: StageCallback


class WorkerProcess:
    def __init__(
        self,
        *,
        model_spec: str,
        device: str,
        python: str | None,
        log_path: Path,
        env: dict[str, str] | None = None,
        jobs: int = 1,
        warmup: str = "auto",
    ) -> None:
        self.model_spec, self.device, self.jobs, self.warmup = model_spec, device, jobs, warmup
        self.model = model_spec.partition("=")[0]
        self.python = python or sys.executable
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.info: Ready | None = None
        self._pending: dict[str, _Pending] = {}
        self._reader: asyncio.Task[None] | None = None
        self._died: WorkerDied | None = None
        self._killed_for: str | None = None  # why hub3d itself ended it, when it did

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self._died is None

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
                self.python, "-m", "hub3d.workers", "--model", self.model_spec,
                "--device", self._child_device(), "--jobs", str(self.jobs),
                "--warmup", self.warmup,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                env=self._env(), start_new_session=True,
                limit=1 << 24,  # a job's metadata line may be long
            )
        while True:
            msg = await self._read_or_die(" while loading")
            if isinstance(msg, Ready):
                self.info = msg
                self._reader = asyncio.create_task(self._read_loop(),
                                                   name=f"hub3d-worker-{self.pid}")
                return msg
            if isinstance(msg, LoadFailed):
                await self._reap()
                raise ModelLoadFailed(msg.error)
            if not isinstance(msg, Loading):
                self.kill()
                await self._reap()
                raise WorkerDied(f"model worker broke the protocol while loading: {msg}",
                                 broken=True)

    async def run(self, request: Run, on_stage: StageCallback) -> Done | Failed:
        """Send one job; return how it ended. Raises WorkerDied."""
        if self._died is not None:
            raise self._died
        assert self.proc is not None and self.proc.stdin is not None
        future: asyncio.Future[Done | Failed] = asyncio.get_running_loop().create_future()
        self._pending[request.job_id] = _Pending(future, on_stage)
        try:
            self.proc.stdin.write(encode(request))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader sees the exit and ends the job with its reason
        try:
            return await future
        finally:
            self._pending.pop(request.job_id, None)

    def cancel(self, job_id: str) -> None:
        """Ask the worker to stop one job at its next stage (its other jobs go on)."""
        self._write(Cancel(job_id))

    def _write(self, message: Cancel | Exit) -> None:
        if self.proc is not None and self.proc.stdin is not None and self.alive:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                self.proc.stdin.write(encode(message))

    async def _read_or_die(self, when: str) -> FromWorker:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await self.proc.stdout.readline()
        except ValueError:  # a line over the stream limit
            line = b"{over the size limit"
        if not line:
            await self._reap()
            raise WorkerDied(describe_exit(self.proc.returncode, self.log_tail()))
        try:
            msg = decode(line)
        except ProtocolError as exc:
            self.kill()
            await self._reap()
            raise WorkerDied(f"model worker broke the protocol{when}: {str(exc)[:300]}",
                             broken=True) from None
        if not isinstance(msg, (Loading, Ready, LoadFailed, Stage, Done, Failed)):
            self.kill()
            await self._reap()
            raise WorkerDied(f"model worker broke the protocol{when}: sent {type(msg).__name__}"
                             " (a message meant for the worker)", broken=True)
        return msg

    async def _read_loop(self) -> None:
        """Hand each message to the job it names; on the worker's end, end every job it held."""
        try:
            while True:
                msg = await self._read_or_die(" while running jobs")
                job_id = getattr(msg, "job_id", None)
                pending = self._pending.get(job_id) if job_id else None
                if isinstance(msg, Stage) and pending is not None:
                    try:
                        pending.on_stage(msg.stage, msg.message)
                    except Exception:  # a stage not recorded (a full disk): the job goes on
                        log.exception("job %s: stage %s not recorded", job_id, msg.stage)
                elif isinstance(msg, (Done, Failed)) and pending is not None:
                    if not pending.future.done():
                        pending.future.set_result(msg)
                elif not isinstance(msg, (Stage, Done, Failed)):
                    self.kill()
                    await self._reap()
                    raise WorkerDied("model worker broke the protocol while running jobs: sent "
                                     f"{type(msg).__name__}", broken=True)
                # a Stage/Done for a job no longer waited on (timed out, abandoned): dropped
        except WorkerDied as exc:
            if self._killed_for is not None:  # hub3d ended it: the jobs did nothing wrong
                exc = WorkerDied(f"{self._killed_for}; {exc}", requeue=True)
            self._died = exc
            for pending in list(self._pending.values()):
                if not pending.future.done():
                    pending.future.set_exception(exc)
        except asyncio.CancelledError:
            raise

    async def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout=10)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 2048))
                lines = fh.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip()[:300] if lines else ""

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL. `reason`: hub3d ends it on purpose (its other jobs may run again)."""
        if reason is not None and self._killed_for is None:
            self._killed_for = reason
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not (freeing its memory for sure)."""
        if self.proc is None or self.proc.returncode is not None:
            await self._end_reader()
            return
        self._write(Exit())
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self._reap()
        await self._end_reader()

    async def _end_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=5)
