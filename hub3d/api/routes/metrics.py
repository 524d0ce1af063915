"""GET /metrics in the Prometheus text format, from a registry owned by this app."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from hub3d.jobs.record import Job, JobStatus

__all__ = ["Metrics", "router"]

router = APIRouter(tags=["status"])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.finished = Counter("hub3d_jobs_finished", "Jobs that ended, by model and status",
                                ["model", "status"], registry=self.registry)
        self.duration = Histogram(
            "hub3d_job_processing_seconds", "Processing time of completed jobs", ["model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=self.registry)
        self.jobs = Gauge("hub3d_jobs", "Jobs in the store by status", ["status"],
                          registry=self.registry)
        self.model_ready = Gauge("hub3d_model_ready", "1 when a worker of the model is loaded",
                                 ["model"], registry=self.registry)
        self.failed = Counter("hub3d_jobs_failed", "Failed jobs, by model and error code",
                              ["model", "error_code"], registry=self.registry)
        # per worker; on a Ray cluster the device names its node (cuda:0@10.0.0.7/3f2a9c1d)
        self.worker_up = Gauge("hub3d_worker_up", "1 when the worker is loaded and alive",
                               ["model", "device", "slot"], registry=self.registry)
        self.worker_jobs = Gauge("hub3d_worker_jobs", "Jobs the worker runs now",
                                 ["model", "device", "slot"], registry=self.registry)
        self.worker_capacity = Gauge("hub3d_worker_capacity", "Jobs the worker runs at once",
                                     ["model", "device", "slot"], registry=self.registry)

    def job_finished(self, job: Job) -> None:
        self.finished.labels(job.model, job.status.value).inc()
        if job.status is JobStatus.FAILED:
            self.failed.labels(job.model, job.error_code or "unknown").inc()
        if job.status is JobStatus.COMPLETED and job.processing_time is not None:
            self.duration.labels(job.model).observe(job.processing_time)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics: job counts, durations, queue and model state."""
    state = request.app.state
    for status, n in state.store.counts().items():
        state.metrics.jobs.labels(status).set(n)
    m = state.metrics
    for name in state.pool.models:
        entry = state.pool.entry(name)
        m.model_ready.labels(name).set(1 if entry.state == "ready" else 0)
        for slot in entry.slots:
            labels = (name, slot.device, str(slot.index))
            m.worker_up.labels(*labels).set(1 if slot.ready else 0)
            m.worker_jobs.labels(*labels).set(len(slot.jobs))
            m.worker_capacity.labels(*labels).set(0 if slot.lost else slot.capacity)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
