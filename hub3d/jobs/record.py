"""Job states and the job record the store keeps."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["JOB_ID_RE", "Job", "JobStatus", "new_job_id", "valid_job_id"]

# token_urlsafe(16) gives 22 characters from this alphabet; anything else never touches disk.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class JobStatus(str, Enum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


def new_job_id() -> str:
    return secrets.token_urlsafe(16)


def valid_job_id(job_id: str) -> bool:
    return bool(JOB_ID_RE.match(job_id))


@dataclass
class Job:
    id: str
    model: str
    params: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    stage: str | None = None
    message: str = ""
    error: str | None = None
    error_code: str | None = None  # a hub3d.errors.ErrorCode value, beside `error`
    attempts: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None  # file name inside the job folder
    media_type: str | None = None
    has_mask: bool = False
    device: str | None = None
    seq: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # Idempotency-Key of the submission, and a digest of what it sent (image, model, params)
    idempotency_key: str | None = None
    request_hash: str | None = None

    @property
    def processing_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 4)
