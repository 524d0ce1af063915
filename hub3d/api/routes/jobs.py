"""Job status, files, server-sent events and cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from hub3d import formats
from hub3d.api.deps import PoolDep, SchedulerDep, SettingsDep, StoreDep
from hub3d.api.file_response import send_file
from hub3d.api.schemas import JobView, error_responses
from hub3d.api.views import job_view
from hub3d.errors import FormatNotOffered, Hub3DError, JobNotFound, JobNotReady
from hub3d.jobs.record import Job, JobStatus
from hub3d.jobs.scheduler import Scheduler
from hub3d.jobs.store import JobStore
from hub3d.workers.pool import WorkerPool

__all__ = ["list_router", "router"]

router = APIRouter(prefix="/job", tags=["jobs"])
list_router = APIRouter(tags=["jobs"])
_ERRORS = error_responses(401, 404, 409)
_KEEPALIVE_S = 15.0
_PREVIEW_WAIT_S = 5.0


@list_router.get("/jobs", response_model=list[JobView], responses=error_responses(401))
async def recent_jobs(store: StoreDep, settings: SettingsDep,
                      limit: int = Query(20, ge=1, le=200)) -> list[JobView]:
    """The most recent jobs of this server, newest first."""
    return [job_view(j, store, settings.root_path) for j in store.recent(limit)]


@router.get("/{job_id}", response_model=JobView, responses=_ERRORS)
async def get_job(job_id: str, scheduler: SchedulerDep, store: StoreDep,
                  settings: SettingsDep) -> JobView:
    """Status, stage, queue position and timings of a job."""
    return job_view(scheduler.get(job_id), store, settings.root_path)


def _completed_file(scheduler: Scheduler, store: JobStore, job_id: str,
                    name: str | None, *, failed_too: bool = False) -> tuple[Job, Path]:
    """The completed job (read once) and its file `name` (default: its result)."""
    job = scheduler.get(job_id)
    if not (job.status is JobStatus.COMPLETED or failed_too and job.status is JobStatus.FAILED):
        detail = f": {job.error}" if job.error else ""
        raise JobNotReady(f"job {job_id} is {job.status.value}{detail}; files are ready once it"
                          " is completed")
    path = store.job_dir(job_id) / (name or job.result or "")
    if not path.is_file():
        raise JobNotFound(f"job {job_id} has no {path.name}")
    return job, path


FormatQuery = Annotated[str | None, Query(
    alias="format", description="glb, usdz, obj or ply: any format the job's model offers "
                                "(GET /models); default: the job's own result")]


@router.get("/{job_id}/download", responses={
    200: {"content": {f.media_type: {"schema": {"description": f.description}}
                      for f in formats.all_formats()},
          "description": "the result, in its own format or the one asked for"},
    **error_responses(401, 404, 409, 422, 500, 503)})
async def download(job_id: str, scheduler: SchedulerDep, store: StoreDep,
                   fmt: FormatQuery = None) -> Response:
    """The result of a completed job; `?format=` converts it (once, kept beside it)."""
    job, path = _completed_file(scheduler, store, job_id, None)
    own = formats.format_of(path)
    wanted = formats.get(fmt) if fmt else own
    if wanted.name != own.name:
        path = await _converted(job, store.job_dir(job_id) / _native(job, store), wanted)
    return await send_file(path, wanted.media_type, filename=wanted.filename(job_id))


def _native(job: Job, store: JobStore) -> str:
    """What the backend wrote (the source of every conversion): recorded in metadata.json
    when the job's own result was made from it."""
    try:
        meta = json.loads((store.job_dir(job.id) / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return str(meta.get("native_result") or job.result or "")


async def _converted(job: Job, source: Path, wanted: formats.Format) -> Path:
    own = formats.format_of(source).name
    if wanted.name == own:
        return source
    offered = formats.offered([own])
    if wanted.name not in offered:
        raise FormatNotOffered(f"job {job.id} is a {own} result: it "
                               f"can be downloaded as {', '.join(offered)}, not {wanted.name}")
    return await asyncio.to_thread(formats.convert_beside, source, wanted.name)


@router.get("/{job_id}/metadata", responses=_ERRORS)
async def metadata(job_id: str, scheduler: SchedulerDep, store: StoreDep) -> Response:
    """metadata.json: params, per-stage timings, background removal path, mesh stats; of a
    failed job, its error and error_code."""
    _, path = _completed_file(scheduler, store, job_id, "metadata.json", failed_too=True)
    return await send_file(path, "application/json")


@router.get("/{job_id}/preview", responses={200: {"content": {"image/png": {}}}, **_ERRORS})
async def preview(job_id: str, scheduler: SchedulerDep, store: StoreDep,
                  pool: PoolDep) -> Response:
    """A small PNG thumbnail of the result."""
    job = scheduler.get(job_id)
    path = store.job_dir(job_id) / "preview.png"
    if job.status is JobStatus.COMPLETED and _renders_preview(pool, job.model):
        # The worker writes it just after reporting the job done: wait a moment for it.
        end = time.monotonic() + _PREVIEW_WAIT_S
        while not path.is_file() and time.monotonic() < end:
            await asyncio.sleep(0.05)
    _, found = _completed_file(scheduler, store, job_id, "preview.png")
    return await send_file(found, "image/png")


def _renders_preview(pool: WorkerPool, model: str) -> bool:
    try:
        return pool.backend(model).writes_preview
    except Hub3DError:  # the model is no longer served: whatever is on disk is all there is
        return False


def _event(job: Job, store: JobStore, root: str) -> str:
    return f"event: {job.status.value}\ndata: {job_view(job, store, root).model_dump_json()}\n\n"


@router.get("/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}},
                                           **_ERRORS})
async def events(job_id: str, request: Request, scheduler: SchedulerDep, store: StoreDep,
                 settings: SettingsDep) -> StreamingResponse:
    """Server-sent events: one `data:` line with the job view per status or stage change."""
    scheduler.get(job_id)  # 404 before the stream starts
    queue: asyncio.Queue[Job] = asyncio.Queue()
    unsubscribe = scheduler.subscribe(job_id, queue.put_nowait)

    async def stream() -> AsyncIterator[str]:
        try:
            job = scheduler.get(job_id)  # fresh: a change may have come since `first`
            yield _event(job, store, settings.root_path)
            while not job.status.is_terminal():
                try:
                    job = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                yield _event(job, store, settings.root_path)
        finally:
            unsubscribe()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/{job_id}", response_model=JobView, responses=_ERRORS)
async def cancel(job_id: str, scheduler: SchedulerDep, store: StoreDep,
                 settings: SettingsDep) -> JobView:
    """Cancel a queued or running job (a running one stops its model worker)."""
    return job_view(scheduler.cancel(job_id), store, settings.root_path)

