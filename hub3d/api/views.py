"""Build public views of jobs."""

from __future__ import annotations

from hub3d.api.schemas import JobView, Timestamps
from hub3d.errors import ErrorCode
from hub3d.jobs.record import Job, JobStatus
from hub3d.jobs.store import JobStore

__all__ = ["job_view", "job_urls"]


def job_urls(root: str, job_id: str) -> tuple[str, str]:
    return f"{root}/job/{job_id}", f"{root}/job/{job_id}/download"


def _advice(code: str | None) -> str | None:
    try:
        return ErrorCode(code).advice if code else None
    except ValueError:
        return None


def job_view(job: Job, store: JobStore, root: str = "") -> JobView:
    _, download = job_urls(root, job.id)
    return JobView(
        job_id=job.id,
        status=job.status.value,
        stage=job.stage,
        position=store.position(job),
        queue_length=store.count_queued(),
        message=job.message,
        download_url=download if job.status is JobStatus.COMPLETED else None,
        processing_time=job.processing_time,
        error=job.error,
        error_code=job.error_code,
        advice=_advice(job.error_code),
        model=job.model,
        device=job.device,
        params=job.params,
        timings=job.timings,
        timestamps=Timestamps(created_at=job.created_at, started_at=job.started_at,
                              finished_at=job.finished_at),
    )
