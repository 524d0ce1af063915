"""A model worker as a Ray actor: one backend loaded once, jobs whose files travel as bytes.

The Ray pool wraps `ModelActor` with `ray.remote(...)` (importing this module needs no Ray) and
calls `run`, an async generator: Ray streams each item back while the job runs — its Stage
messages as the backend reports them, then `Finished` (the Done message with the result's
bytes: one item, each item being a round trip) or `Failed`; a `ResultFile` for an extra file
(preview.png) may follow. The job itself runs exactly as in a worker process: `load_backend`
and `JobRunner` (hub3d.workers.runner), on a scratch job folder on the actor's node, several
jobs at once in threads over the one loaded model.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import traceback
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError
from hub3d.workers.protocol import Done, Failed, LoadFailed, Message, Ready, Run
from hub3d.workers.runner import JobRunner, load_backend

__all__ = ["RUNTIME_ENV", "Finished", "ModelActor", "ResultFile"]

# Ray stores any return over 100 KiB in the object store of the actor's node, and the caller then
# pulls it: 300 kB cost 8 ms across nodes instead of 2 ms inline. Results up to 1 MiB travel in the
# reply itself with this, set per actor (the cluster's own settings stay as they are).
RUNTIME_ENV = {"env_vars": {"RAY_max_direct_call_object_size": str(1 << 20)}}


@dataclass(frozen=True)
class ResultFile:
    """A file a job wrote in its folder beside its result (preview.png)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Finished:
    """The job is done: its Done message and the bytes of its result file (`done.result`)."""

    done: Done
    data: bytes


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

    def __init__(self, model_spec: str, device: str = "cpu", jobs: int = 1,
                 warmup: str = "auto") -> None:
        self._device = device
        self._scratch = _scratch_dir()
        self._executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="hub3d-job")
        self._running: set[str] = set()  # jobs whose thread has not ended (or not yet begun)
        # one send for every job, routing by job id (as the process worker's one pipe is shared
        # by its jobs): each job's messages go to the queue its stream reads
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: JobRunner | None = None
        # A load failure is reported by ready(), not raised: a raising constructor would make
        # Ray restart the actor over and over, and the caller would see Ray's error, not ours.
        self._status: Ready | LoadFailed
        try:
            backend, cls, self._status = load_backend(model_spec, device, warmup=warmup,
                                                      jobs=jobs)
        except BaseException as exc:  # noqa: BLE001 — any load failure is the model's
            traceback.print_exc()
            message = exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            self._status = LoadFailed(message)
        else:
            self._runner = JobRunner(backend, cls, self._send, model_spec.partition("=")[0])

    async def ready(self) -> Ready | LoadFailed:
        return self._status

    async def where(self) -> dict[str, Any]:
        """The node and process the actor runs in."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "device": self._device}

    async def running(self) -> list[str]:
        """Jobs not ended on this actor: at work, or waiting for a thread."""
        return sorted(self._running)

    async def cancel(self, job_id: str) -> None:
        """Stop one job at its next stage report (threads cannot be interrupted)."""
        if self._runner is not None and job_id in self._running:
            self._runner.cancel(job_id)

    def _send(self, message: Message) -> None:
        """Called from a job's thread: the message goes to that job's stream."""
        queue = self._queues.get(getattr(message, "job_id", ""))
        if queue is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(queue.put_nowait, message)

    async def run(
        self, job_id: str, params: dict[str, Any], image: bytes, mask: bytes | None = None,
    ) -> AsyncIterator[Message | Finished | ResultFile]:
        """Run one job; yields Stage*, then Finished (+ extra ResultFiles) or Failed."""
        runner = self._runner
        if runner is None:
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
                runner.run(request)
            finally:
                self._running.discard(job_id)
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
                runner.cancel(job_id)
            raise
        finally:
            self._queues.pop(job_id, None)
            folder.release()
