"""The job store's transitions: each names the status it expects, in the SQL itself."""

from __future__ import annotations

from pathlib import Path

from hub3d.jobs.record import Job, JobStatus, new_job_id
from hub3d.jobs.store import JobStore


def test_a_transition_applies_only_from_the_expected_status(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    try:
        job = store.insert(Job(id=new_job_id(), model="slow", params={}))
        started = store.transition(job.id, JobStatus.QUEUED, status=JobStatus.PROCESSING,
                                   attempts=1)
        assert started is not None and started.status is JobStatus.PROCESSING
        assert started.attempts == 1  # the row as it is after the write
        canceled = store.transition(job.id, (JobStatus.QUEUED, JobStatus.PROCESSING),
                                    status=JobStatus.CANCELED, message="canceled by request")
        assert canceled is not None and canceled.status is JobStatus.CANCELED
        # The worker's late answer: it expects a processing job and finds none.
        late = store.transition(job.id, JobStatus.PROCESSING, status=JobStatus.COMPLETED,
                                result="result.glb", stage="exporting")
        assert late is None
        after = store.get(job.id)
        assert after is not None and after.status is JobStatus.CANCELED
        assert after.result is None and after.stage is None
        assert after.message == "canceled by request"
        assert store.transition("A" * 22, JobStatus.QUEUED, status=JobStatus.FAILED) is None
    finally:
        store.close()
