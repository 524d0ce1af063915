"""The scheduler: FIFO per model, hands jobs to free places on workers (leases), records every
transition. It does not know what kind of pool runs a job: any object with the WorkerPool's
methods (acquire, ensure_started, run, release, cancel, abandon …) will do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hub3d.config import Settings
from hub3d.errors import ErrorCode, JobNotFound, JobNotReady, QueueFull
from hub3d.fsutil import disk_full
from hub3d.jobs.ends import Completed, Dropped, Failure, JobEnd, Requeue, code_of, stage_durations
from hub3d.jobs.outputs import for_the_backend, in_its_format
from hub3d.jobs.record import Job, JobStatus
from hub3d.jobs.recorder import EndRecorder
from hub3d.jobs.store import JobStore
from hub3d.workers.pool import Lease, WorkerPool
from hub3d.workers.process import ModelLoadFailed, WorkerDied
from hub3d.workers.protocol import Failed, Run

__all__ = ["Scheduler"]

log = logging.getLogger("hub3d.jobs")
RESTART_FAILURE = "server restarted while processing (twice); submit the image again"
JobListener = Callable[[Job], None]
_LIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)


class Scheduler:
    def __init__(
        self,
        *,
        settings: Settings,
        store: JobStore,
        pool: WorkerPool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.store, self.pool, self.clock = settings, store, pool, clock
        self.started = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self._listeners: dict[str, set[JobListener]] = defaultdict(set)
        self.ends = EndRecorder(store, pool.catalog, clock, self._notify)
        self.on_finished = self.ends.on_finished

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.recover()
        self.cleanup_expired()
        self._loops = [asyncio.create_task(self._dispatch_loop(), name="hub3d-dispatch"),
                       asyncio.create_task(self._retention_loop(), name="hub3d-retention")]
        if self.settings.preload:
            for name in self.pool.models:
                self._spawn(self._preload(name))
        self.started = True
        self._wake.set()

    async def stop(self) -> None:
        self.started = False
        for task in (*self._loops, *self._tasks):
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        await self.pool.shutdown()

    def recover(self) -> None:
        """After a restart: queued jobs stay; a job cut off mid-processing gets one more try."""
        for job in self.store.by_status(JobStatus.PROCESSING):
            if job.attempts < 2:
                self.store.transition(job.id, JobStatus.PROCESSING, status=JobStatus.QUEUED,
                                      stage=None,
                                      message="retrying: the server restarted while processing")
            else:
                self.ends.fail(job, Failure(RESTART_FAILURE, ErrorCode.INTERRUPTED, {}))

    # submission -------------------------------------------------------------------------------
    def check_capacity(self) -> None:
        queued = self.store.count_queued()
        if queued >= self.settings.max_queue_size:
            raise QueueFull(
                f"the queue is full ({queued} jobs waiting, limit {self.settings.max_queue_size});"
                " retry after the Retry-After seconds", retry_after=self.retry_after(queued))

    def retry_after(self, queued: int) -> int:
        recent = self.ends.recent_durations[-20:]
        mean = sum(recent) / len(recent) if recent else 5.0
        return max(1, min(600, int(mean * queued / max(1, self.pool.capacity()) + 0.999)))

    def enqueue(self, job: Job) -> Job:
        """Record a job whose folder is already written. Capacity is checked here again, with no
        await in between, so concurrent submissions can never overfill the queue."""
        self.check_capacity()
        job.created_at = self.clock()
        self.store.insert(job)
        log.debug("job %s queued model=%s", job.id, job.model)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job with id '{job_id}' (unknown, or expired and cleaned up)")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status.is_terminal():
            raise JobNotReady(f"job {job_id} is already {job.status.value}; nothing to cancel")
        if job.status is JobStatus.PROCESSING:
            self.pool.cancel(job_id)  # its slot stays held until the worker lets the job go
        return self.ends.finish(job.id, JobStatus.CANCELED, message="canceled by request",
                                code=ErrorCode.CANCELED, expect=_LIVE) or self.get(job_id)

    # listeners (SSE, sync waits) ------------------------------------------------------------------
    def subscribe(self, job_id: str, listener: JobListener) -> Callable[[], None]:
        self._listeners[job_id].add(listener)

        def unsubscribe() -> None:
            self._listeners[job_id].discard(listener)
            if not self._listeners[job_id]:
                self._listeners.pop(job_id, None)

        return unsubscribe

    async def wait_terminal(self, job_id: str, timeout: float) -> Job:
        done = asyncio.Event()
        ended: list[Job] = []

        def listener(job: Job) -> None:
            if job.status.is_terminal():
                ended.append(job)
                done.set()

        unsubscribe = self.subscribe(job_id, listener)
        try:
            job = self.get(job_id)
            if not job.status.is_terminal():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout)
            return ended[-1] if ended else self.get(job_id)
        finally:
            unsubscribe()

    def _notify(self, job_id: str, job: Job | None = None) -> None:
        """Tell a job's listeners its new state (`job` when the caller just read it)."""
        listeners = list(self._listeners.get(job_id, ()))
        if listeners:
            job = job or self.store.get(job_id)
            if job is not None:
                for listener in listeners:
                    listener(job)

    # dispatch ------------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for job in self.store.queued():
                if job.model not in self.pool.models:
                    self.ends.finish(job.id, JobStatus.FAILED, expect=JobStatus.QUEUED,
                                     code=ErrorCode.MODEL_UNAVAILABLE,
                                     error=f"model '{job.model}' is no longer served by this"
                                           " server")
                    continue
                lease = self.pool.acquire(job.model, job.id)
                if lease is None:
                    continue
                started = self.store.transition(
                    job.id, JobStatus.QUEUED, status=JobStatus.PROCESSING,
                    started_at=self.clock(), attempts=job.attempts + 1, device=lease.device,
                    stage=None if self.pool.is_ready(lease) else "loading_model",
                    message="starting")
                if started is None:  # ended meanwhile (canceled): the place stays free
                    await self.pool.release(lease)
                    continue
                self._notify(job.id, started)
                self._spawn(self._execute(started, lease))

    async def _preload(self, model: str) -> None:
        """Start every worker of the model (each slot takes one preload lease first)."""
        leases = []
        for index in range(len(self.pool.entry(model).slots)):
            lease = self.pool.acquire(model, f"preload-{model}-{index}")
            if lease is not None:
                leases.append(lease)
        await asyncio.gather(*(self._start_one(model, lease) for lease in leases))

    async def _start_one(self, model: str, lease: Lease) -> None:
        try:
            await self.pool.ensure_started(lease, lambda stage, msg: None)
        except (ModelLoadFailed, WorkerDied) as exc:
            log.error("model %s failed to load: %s", model, exc)
        finally:
            await self.pool.release(lease)
            self._wake.set()

    def _on_stage(self, job_id: str) -> Callable[[str, str], None]:
        def report(stage: str, message: str) -> None:
            # Guarded: a stage line still in the pipe after a cancel must not touch the job.
            job = self.store.transition(job_id, JobStatus.PROCESSING, stage=stage,
                                        message=message or stage.replace("_", " "))
            if job is not None:
                self._notify(job_id, job)
        return report

    async def _execute(self, job: Job, lease: Lease) -> None:
        try:
            try:
                end = await in_its_format(job, await self._run(job, lease),
                                          self.store.job_dir(job.id))
            except Exception as exc:  # never leave a job in "processing"
                log.exception("job %s: unexpected scheduler error", job.id)
                end = Failure(f"server-side bug while running this '{job.model}' job "
                              f"({type(exc).__name__}: {exc}); report it with the job id",
                              ErrorCode.INTERNAL, {})
            await self.ends.record(job.id, end)
        finally:
            await self.pool.release(lease)
            self._wake.set()

    async def _run(self, job: Job, lease: Lease) -> JobEnd:
        """Run the job on its lease; how it ended, as a value. Never raises but to cancel."""
        notify = self._on_stage(job.id)
        marks: list[tuple[str, float]] = []  # (stage, when it began), as reported

        def report(stage: str, message: str = "") -> None:
            marks.append((stage, time.perf_counter()))
            notify(stage, message)

        spent: dict[str, float] = {}  # the control plane's share: the model load, when it ran
        timeout = self.settings.job_timeout_s
        try:
            if not self.pool.is_ready(lease):
                report("loading_model", f"loading {job.model} on {lease.device}")
                started = time.perf_counter()
                try:
                    await self.pool.ensure_started(lease, report)
                finally:
                    spent["model_load"] = round(time.perf_counter() - started, 6)
            if self.get(job.id).status is not JobStatus.PROCESSING:
                return Dropped()  # canceled while the model loaded
            request = Run(job.id, str(self.store.job_dir(job.id)),
                          for_the_backend(job, self.pool.catalog), job.has_mask)
            answer = await asyncio.wait_for(self.pool.run(lease, request, report), timeout)
        except ModelLoadFailed as exc:
            return Failure(f"model '{job.model}' failed to load: {exc}",
                           ErrorCode.MODEL_UNAVAILABLE, spent)
        except WorkerDied as exc:  # its own timings died with it: keep the stages it reported
            spent.update(stage_durations(marks, time.perf_counter()))
            if exc.requeue:
                return Requeue(str(exc), spent)
            if exc.broken:
                return Failure(f"server-side bug in model '{job.model}': {exc}; its worker was "
                               "restarted, report it with the job id", ErrorCode.INTERNAL, spent)
            return Failure(str(exc), ErrorCode.WORKER_CRASHED, spent)
        except asyncio.TimeoutError:
            self.pool.abandon(lease, f"its worker was restarted because job {job.id} ran past"
                                     " the job timeout")
            spent.update(stage_durations(marks, time.perf_counter()))
            return Failure(f"the job ran longer than {timeout:.0f} s (HUB3D_JOB_TIMEOUT_S) and "
                           f"was stopped; its '{job.model}' worker was restarted",
                           ErrorCode.TIMEOUT, spent)
        except Exception as exc:  # never leave a job in "processing"
            if disk_full(exc):
                return Failure(f"the data dir ran out of space while the job ran ({exc}); free"
                               " some space and submit again", ErrorCode.STORAGE_FULL, spent)
            log.exception("job %s: unexpected scheduler error", job.id)
            return Failure(f"server-side bug while running this '{job.model}' job "
                           f"({type(exc).__name__}: {exc}); report it with the job id",
                           ErrorCode.INTERNAL, spent)
        spent.update(answer.timings)
        if isinstance(answer, Failed):
            return Failure(answer.error or "the model failed", code_of(answer.code), spent)
        return Completed(answer, lease.device, spent)

    # retention -----------------------------------------------------------------------------------
    def cleanup_expired(self) -> int:
        cutoff = self.clock() - self.settings.result_ttl_hours * 3600
        removed = 0
        for job in self.store.expired(cutoff):
            self.store.delete(job.id)
            removed += 1
        return removed

    async def _retention_loop(self) -> None:
        period = max(1.0, min(600.0, self.settings.result_ttl_hours * 3600 / 4))
        while True:
            await asyncio.sleep(period)
            self.cleanup_expired()
