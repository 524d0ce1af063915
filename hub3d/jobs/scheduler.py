"""The scheduler: FIFO per model, hands jobs to idle worker slots, records every transition."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from hub3d import __version__
from hub3d.config import Settings
from hub3d.errors import JobNotFound, JobNotReady, QueueFull
from hub3d.fsutil import atomic_write_json, disk_full
from hub3d.jobs.ends import Completed, Dropped, Failure, JobEnd, stage_durations
from hub3d.jobs.record import Job, JobStatus
from hub3d.jobs.store import JobStore
from hub3d.workers.pool import Slot, WorkerPool
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
        self._recent_durations: list[float] = []
        self.on_finished: list[Callable[[Job], None]] = []

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
                self._finish(job, JobStatus.FAILED, error=RESTART_FAILURE)

    # submission -------------------------------------------------------------------------------
    def check_capacity(self) -> None:
        queued = self.store.count_queued()
        if queued >= self.settings.max_queue_size:
            raise QueueFull(
                f"the queue is full ({queued} jobs waiting, limit {self.settings.max_queue_size});"
                " retry after the Retry-After seconds", retry_after=self.retry_after(queued))

    def retry_after(self, queued: int) -> int:
        recent = self._recent_durations[-20:]
        mean = sum(recent) / len(recent) if recent else 5.0
        slots = max(1, sum(len(e.slots) for e in self.pool.models.values()))
        return max(1, min(600, int(mean * queued / slots + 0.999)))

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
            self.pool.kill_job(job_id)  # the only way to stop a model mid-run; it restarts
        return self._finish(job, JobStatus.CANCELED, message="canceled by request",
                            expect=_LIVE) or self.get(job_id)

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
                    self._finish(job, JobStatus.FAILED, expect=JobStatus.QUEUED,
                                 error=f"model '{job.model}' is no longer served by this server")
                    continue
                slot = self.pool.acquire(job.model)
                if slot is None:
                    continue
                started = self.store.transition(
                    job.id, JobStatus.QUEUED, status=JobStatus.PROCESSING,
                    started_at=self.clock(), attempts=job.attempts + 1, device=slot.device,
                    stage="loading_model" if not slot.ready else None, message="starting")
                if started is None:  # ended meanwhile (canceled): the slot stays free
                    self.pool.release(slot)
                    continue
                self._notify(job.id, started)
                self._spawn(self._execute(started, slot))

    async def _preload(self, model: str) -> None:
        slot = self.pool.acquire(model)
        if slot is None:
            return
        try:
            await self.pool.ensure_started(slot, lambda stage, msg: None)
        except (ModelLoadFailed, WorkerDied) as exc:
            log.error("model %s failed to load: %s", model, exc)
        finally:
            self.pool.release(slot)
            self._wake.set()

    def _on_stage(self, job_id: str) -> Callable[[str, str], None]:
        def report(stage: str, message: str) -> None:
            # Guarded: a stage line still in the pipe after a cancel must not touch the job.
            job = self.store.transition(job_id, JobStatus.PROCESSING, stage=stage,
                                        message=message or stage.replace("_", " "))
            if job is not None:
                self._notify(job_id, job)
        return report

    async def _execute(self, job: Job, slot: Slot) -> None:
        try:
            await self._record_end(job.id, await self._run(job, slot))
        finally:
            self.pool.release(slot)
            self._wake.set()

    async def _run(self, job: Job, slot: Slot) -> JobEnd:
        """Run the job on its slot; how it ended, as a value."""
        notify = self._on_stage(job.id)
        marks: list[tuple[str, float]] = []  # (stage, when it began), as reported

        def report(stage: str, message: str = "") -> None:
            marks.append((stage, time.perf_counter()))
            notify(stage, message)

        spent: dict[str, float] = {}  # the control plane's share: the model load, when it ran
        try:
            if not slot.ready:
                report("loading_model", f"loading {job.model} on {slot.device}")
                started = time.perf_counter()
                try:
                    await self.pool.ensure_started(slot, report)
                finally:
                    spent["model_load"] = round(time.perf_counter() - started, 6)
            if self.get(job.id).status is not JobStatus.PROCESSING:
                return Dropped()  # canceled while the model loaded
            request = Run(job.id, str(self.store.job_dir(job.id)), job.params, job.has_mask)
            answer = await self.pool.run(slot, request, report)
        except ModelLoadFailed as exc:
            return Failure(f"model '{job.model}' failed to load: {exc}", spent)
        except WorkerDied as exc:  # its own timings died with it: keep the stages it reported
            spent.update(stage_durations(marks, time.perf_counter()))
            return Failure(str(exc), spent)
        except Exception as exc:  # never leave a job in "processing"
            if disk_full(exc):
                return Failure(f"the data dir ran out of space while the job ran ({exc}); free"
                               " some space and submit again", spent)
            log.exception("job %s: unexpected scheduler error", job.id)
            return Failure(f"internal error: {type(exc).__name__}: {exc}", spent)
        spent.update(answer.timings)
        if isinstance(answer, Failed):
            return Failure(answer.error or "the model failed", spent)
        return Completed(answer, slot.device, spent)

    async def _record_end(self, job_id: str, end: JobEnd) -> None:
        """Record how a job ended; on a full disk keep trying until space comes back, so a
        job never stays 'processing' while the server runs."""
        delay = 0.5
        while True:
            try:
                self._end(job_id, end)
                return
            except Exception as exc:
                if not disk_full(exc):
                    raise
                log.error("job %s: cannot record its end, disk full (%s); retrying", job_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    @staticmethod
    def _timings(job: Job, spent: dict[str, float], now: float) -> dict[str, float]:
        """intake (control plane) first, then the model load and the worker's stages."""
        timings = {**job.timings, **spent}
        timings["queue_wait"] = round((job.started_at or now) - job.created_at, 6)
        return timings

    def _end(self, job_id: str, end: JobEnd) -> None:
        """Only a job still processing takes its end: a canceled one stays canceled."""
        if isinstance(end, Completed):
            self._complete(self.get(job_id), end)
        elif isinstance(end, Failure):
            job, now = self.get(job_id), self.clock()
            self._finish(job, JobStatus.FAILED, error=end.error,
                         timings=self._timings(job, end.spent, now), now=now)

    def _complete(self, job: Job, end: Completed) -> None:
        if job.status is not JobStatus.PROCESSING:
            return  # canceled meanwhile: no metadata.json, no result
        now, done = self.clock(), end.done
        timings = self._timings(job, end.spent, now)
        metadata = {
            "job_id": job.id, "model": job.model, "device": end.device, "params": job.params,
            "timings": timings, "result": done.result, "media_type": done.media_type,
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": now,
            "hub3d_version": __version__, **self._weights(job.model), **done.metadata,
        }
        path = self.store.job_dir(job.id) / "metadata.json"
        atomic_write_json(path, metadata)
        if self._finish(job, JobStatus.COMPLETED, result=done.result,
                        media_type=done.media_type, timings=timings, now=now) is None:
            path.unlink(missing_ok=True)

    def _weights(self, model: str) -> dict[str, Any]:
        """Which checkpoint its worker was told to load, and from where (the catalog's rule)."""
        entry = self.pool.catalog.entry(model)
        if entry.files is None:
            return {}
        return {"weights": {"checkpoint": entry.files.checkpoint,
                            "source": entry.files.source.value, "offline": entry.files.offline}}

    def _finish(self, job: Job, status: JobStatus, *, error: str | None = None,
                message: str | None = None, now: float | None = None,
                expect: JobStatus | tuple[JobStatus, ...] = JobStatus.PROCESSING,
                **fields: Any) -> Job | None:
        """End a job that is still `expect`; the ended job, or None when it was not."""
        now = self.clock() if now is None else now
        text = message or (error if error else f"{status.value}")
        finished = self.store.transition(job.id, expect, status=status, error=error,
                                         message=text, finished_at=now, stage=None, **fields)
        if finished is None:
            return None
        if status is JobStatus.COMPLETED and finished.processing_time is not None:
            self._recent_durations = [*self._recent_durations[-49:], finished.processing_time]
        log.info("job %s %s model=%s time=%s%s", job.id, status.value, job.model,
                 finished.processing_time, f" error={error}" if error else "")
        for hook in self.on_finished:
            hook(finished)
        self._notify(job.id, finished)
        return finished

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

