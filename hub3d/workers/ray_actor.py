"""A model worker as a Ray actor: one backend loaded once, jobs whose files travel as bytes.

The pool wraps `ModelActor` with `ray.remote(...)` (so importing this module needs no Ray) and
calls `run`, an async generator: Ray streams each item back to the caller while the job runs.
A job yields its Stage messages as the backend reports them, then `Finished` (the Done message and
the result's bytes, one item: each item is a round trip) or `Failed`; a `ResultFile` for an extra
file (preview.png) may follow. The per-job logic is the process worker's own
(`hub3d.workers.child.run_job`): the input bytes are written to a scratch job folder on the
actor's node, the backend runs there, and the files it leaves are read back as bytes.

Several jobs run at once on one actor, each in a thread of its own (up to `jobs`). Cancelling a
call (`ray.cancel` on its generator) ends the stream at once; the backend is stopped at its next
stage report, as threads cannot be interrupted.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError
from hub3d.models.base import Backend
from hub3d.models.registry import load_backend_class
from hub3d.workers.child import run_job
from hub3d.workers.protocol import Done, Failed, LoadFailed, Message, Ready, Run, Stage

__all__ = ["RUNTIME_ENV", "Finished", "JobCanceled", "ModelActor", "ResultFile"]

# Ray stores any return over 100 KiB in the object store of the actor's node, and the caller then
# pulls it: 300 kB cost 8 ms across nodes instead of 2 ms inline. Results up to 1 MiB travel in the
# reply itself with this, set per actor (the cluster's own settings stay as they are).
RUNTIME_ENV = {"env_vars": {"RAY_max_direct_call_object_size": str(1 << 20)}}


@dataclass(frozen=True)
class ResultFile:
    """A file a job wrote in its folder (the result, or an extra such as preview.png)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Finished:
    """The job is done: its Done message and the bytes of its result file (`done.result`)."""

    done: Done
    data: bytes


class JobCanceled(ModelError):
    """Raised at a backend's next stage report once its call was cancelled."""

    code = "canceled"


_END = object()  # the job's thread is done: nothing more comes from it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scratch_dir() -> Path:
    """This actor's folder under the node's temp dir. Folders of actors that died without
    cleaning up (killed, node lost) go first: they may hold users' images."""
    root = Path(tempfile.gettempdir()) / "hub3d-ray-jobs"
    root.mkdir(exist_ok=True)
    for folder in root.iterdir():
        pid = folder.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    atexit.register(shutil.rmtree, mine, ignore_errors=True)  # a graceful exit cleans up too
    return mine


class _Folder:
    """A job's scratch folder, removed by whichever of its two users (the job's thread, the
    stream) lets go last: a cancelled stream must not pull it from under a running backend."""

    def __init__(self, path: Path) -> None:
        self.path, self._users, self._lock = path, 2, threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            shutil.rmtree(self.path, ignore_errors=True)


class ModelActor:
    """One backend on one device (Ray sets CUDA_VISIBLE_DEVICES: a GPU actor gets `cuda:0`)."""

    def __init__(self, model_spec: str, device: str = "cpu", jobs: int = 1) -> None:
        self._device = device
        self._scratch = _scratch_dir()
        self._executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hub3d-job")
        self._running: set[str] = set()  # jobs whose thread has not ended (or not yet begun)
        # One send for every job, routing by job id (as the process worker's one pipe is shared
        # by its jobs): each job's messages go to the queue its stream reads.
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._canceled: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        started = time.perf_counter()
        # A load failure is reported by ready(), not raised: a raising constructor would make
        # Ray restart the actor over and over, and the caller would see Ray's error, not ours.
        self._status: Ready | LoadFailed
        self._cls: type[Backend] | None = None
        try:
            self._cls = load_backend_class(model_spec)
            self._backend = self._cls()
            self._backend.load(device)
        except BaseException as exc:  # noqa: BLE001 — any load failure is the model's
            traceback.print_exc()
            message = exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            self._status = LoadFailed(message)
        else:
            self._status = Ready(round(time.perf_counter() - started, 3), device)

    async def ready(self) -> Ready | LoadFailed:
        return self._status

    async def where(self) -> dict[str, Any]:
        """The node and process the actor runs in (placement checks, kill tests)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "device": self._device}

    def _send(self, message: Message) -> None:
        """Called from a job's thread. A canceled job stops at its next stage report."""
        job_id = getattr(message, "job_id", "")
        if isinstance(message, Stage) and job_id in self._canceled:
            raise JobCanceled(f"job {job_id} was canceled")
        queue = self._queues.get(job_id)
        if queue is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(queue.put_nowait, message)

    async def running(self) -> list[str]:
        """Jobs not ended on this actor: at work, or waiting for a thread. A canceled one stays
        until its backend's next stage report."""
        return sorted(self._running)

    async def run(
        self, job_id: str, params: dict[str, Any], image: bytes, mask: bytes | None = None,
    ) -> AsyncIterator[Message | Finished | ResultFile]:
        """Run one job; yields Stage*, then Finished (+ extra ResultFiles) or Failed."""
        if not isinstance(self._status, Ready) or self._cls is None:
            raise RuntimeError(f"the model did not load: {self._status}")
        job_dir = Path(tempfile.mkdtemp(prefix=f"{job_id[:16]}-", dir=self._scratch))
        folder = _Folder(job_dir)
        (job_dir / "input.png").write_bytes(image)
        if mask is not None:
            (job_dir / "mask.png").write_bytes(mask)
        request = Run(job_id, str(job_dir), params, has_mask=mask is not None)
        self._loop = loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[job_id] = queue

        def work() -> None:
            try:
                assert self._cls is not None
                run_job(self._backend, self._cls, request, self._send)
            finally:
                self._running.discard(job_id)
                self._canceled.discard(job_id)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
                folder.release()

        self._running.add(job_id)
        loop.run_in_executor(self._executor, work)
        try:
            while (message := await queue.get()) is not _END:
                if isinstance(message, Done):
                    yield Finished(message, (job_dir / message.result).read_bytes())
                    continue
                yield message
                if isinstance(message, Failed):
                    return
            preview = job_dir / "preview.png"
            if preview.is_file():  # written by the job's `after`, once Done was sent
                yield ResultFile(preview.name, preview.read_bytes())
        except BaseException:  # cancelled (or the caller went away): stop at the next stage
            if job_id in self._running:
                self._canceled.add(job_id)
            raise
        finally:
            self._queues.pop(job_id, None)
            folder.release()
