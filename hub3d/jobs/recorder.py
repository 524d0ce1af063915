"""Recording how a job ended: its row, its metadata.json, its listeners. Only a job still
`processing` takes its end (a canceled one stays canceled), and only a job whose result is on
disk becomes `completed`. Whatever goes wrong while recording ends the job `failed` (code
`internal`) rather than leaving it `processing`; a full disk is waited out instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hub3d import __version__
from hub3d.errors import ErrorCode
from hub3d.fsutil import atomic_write_json, disk_full
from hub3d.jobs.ends import Completed, Dropped, Failure, JobEnd, Requeue
from hub3d.jobs.record import Job, JobStatus
from hub3d.jobs.store import JobStore
from hub3d.models.catalog import Catalog

__all__ = ["EndRecorder"]

log = logging.getLogger("hub3d.jobs")
_RETRIES = 2  # a job runs at most this often (a restart or a lost worker gives a second go)


class EndRecorder:
    def __init__(self, store: JobStore, catalog: Catalog, clock: Callable[[], float],
                 notify: Callable[[str, Job | None], None]) -> None:
        self.store, self.catalog, self.clock, self._notify = store, catalog, clock, notify
        self.on_finished: list[Callable[[Job], None]] = []
        self.recent_durations: list[float] = []

    async def record(self, job_id: str, end: JobEnd) -> None:
        """Record the end; on a full disk keep trying until space comes back, so a job never
        stays 'processing' while the server runs."""
        delay = 0.5
        while True:
            try:
                self._record(job_id, end)
                return
            except Exception as exc:
                if not disk_full(exc):
                    self._bug(job_id, exc)
                    return
                log.error("job %s: cannot record its end, disk full (%s); retrying", job_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _bug(self, job_id: str, exc: Exception) -> None:
        log.exception("job %s: recording its end failed", job_id)
        try:
            job = self.store.get(job_id)
            model = job.model if job else "?"
            self.finish(job_id, JobStatus.FAILED, code=ErrorCode.INTERNAL,
                        error=f"server-side bug while recording the end of this '{model}' job "
                              f"({type(exc).__name__}: {exc}); report it with the job id")
        except Exception:  # the store itself is broken: the log is all that is left
            log.exception("job %s: could not even record it as failed", job_id)

    def _record(self, job_id: str, end: JobEnd) -> None:
        if isinstance(end, Dropped):
            return
        job = self.store.get(job_id)
        if job is None or job.status is not JobStatus.PROCESSING:
            return  # canceled meanwhile (or deleted): no metadata.json, no result
        if isinstance(end, Completed):
            self._complete(job, end)
        elif isinstance(end, Requeue):
            self._requeue(job, end)
        else:
            self.fail(job, end)

    def _timings(self, job: Job, spent: dict[str, float], now: float) -> dict[str, float]:
        """intake (control plane) first, then the model load and the worker's stages."""
        timings = {**job.timings, **spent}
        timings["queue_wait"] = round((job.started_at or now) - job.created_at, 6)
        return timings

    def _weights(self, model: str) -> dict[str, Any]:
        """Which checkpoint its worker was told to load, and from where (the catalog's rule)."""
        entry = self.catalog.entry(model) if model in self.catalog else None
        if entry is None or entry.files is None:
            return {}
        return {"weights": {"checkpoint": entry.files.checkpoint,
                            "source": entry.files.source.value, "offline": entry.files.offline}}

    def _base(self, job: Job, now: float, timings: dict[str, float]) -> dict[str, Any]:
        return {"job_id": job.id, "model": job.model, "params": job.params, "timings": timings,
                "created_at": job.created_at, "started_at": job.started_at, "finished_at": now,
                "hub3d_version": __version__, **self._weights(job.model)}

    def _complete(self, job: Job, end: Completed) -> None:
        done, folder = end.done, self.store.job_dir(job.id)
        result = folder / done.result
        if "/" in done.result or done.result in ("", ".", "..") or not result.is_file():
            self.fail(job, Failure(f"server-side bug in model '{job.model}': its worker reported "
                                   f"the result '{done.result}', which is not in the job folder;"
                                   " report it with the job id", ErrorCode.INTERNAL, end.spent))
            return
        now = self.clock()
        timings = self._timings(job, end.spent, now)
        metadata = {**done.metadata, **self._base(job, now, timings), "device": end.device,
                    "result": done.result, "media_type": done.media_type}
        path = folder / "metadata.json"
        atomic_write_json(path, metadata)
        if self.finish(job.id, JobStatus.COMPLETED, result=done.result,
                       media_type=done.media_type, timings=timings, now=now) is None:
            path.unlink(missing_ok=True)

    def fail(self, job: Job, end: Failure) -> None:
        now = self.clock()
        timings = self._timings(job, end.spent, now)
        try:  # what a failed job leaves for the curious: best effort, the row is what counts
            atomic_write_json(self.store.job_dir(job.id) / "metadata.json", {
                **self._base(job, now, timings), "error": end.error,
                "error_code": end.code.value})
        except OSError:
            pass
        self.finish(job.id, JobStatus.FAILED, error=end.error, code=end.code, timings=timings,
                    now=now)

    def _requeue(self, job: Job, end: Requeue) -> None:
        if job.attempts >= _RETRIES:
            self.fail(job, Failure(f"{end.reason} (it ran {job.attempts} times); submit it "
                                   "again", ErrorCode.WORKER_CRASHED, end.spent))
            return
        again = self.store.transition(job.id, JobStatus.PROCESSING, status=JobStatus.QUEUED,
                                      stage=None, device=None,
                                      message=f"retrying: {end.reason}")
        if again is not None:
            log.info("job %s requeued: %s", job.id, end.reason)
            self._notify(job.id, again)

    def finish(self, job_id: str, status: JobStatus, *, error: str | None = None,
               code: ErrorCode | None = None, message: str | None = None,
               now: float | None = None,
               expect: JobStatus | tuple[JobStatus, ...] = JobStatus.PROCESSING,
               **fields: Any) -> Job | None:
        """End a job that is still `expect`; the ended job, or None when it was not."""
        now = self.clock() if now is None else now
        text = message or (error if error else f"{status.value}")
        finished = self.store.transition(job_id, expect, status=status, error=error,
                                         error_code=code.value if code else None,
                                         message=text, finished_at=now, stage=None, **fields)
        if finished is None:
            return None
        if status is JobStatus.COMPLETED and finished.processing_time is not None:
            self.recent_durations = [*self.recent_durations[-49:], finished.processing_time]
        log.info("job %s %s model=%s time=%s%s", job_id, status.value, finished.model,
                 finished.processing_time, f" error={error}" if error else "")
        for hook in self.on_finished:
            hook(finished)
        self._notify(job_id, finished)
        return finished
