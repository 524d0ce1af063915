"""POST /generate (async) and POST /generate/sync."""

from __future__ import annotations

import shutil
import sqlite3
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from hub3d import formats
from hub3d.api.deps import CatalogDep, PoolDep, SchedulerDep, SettingsDep, StoreDep
from hub3d.api.errors import error_response
from hub3d.api.file_response import send_file
from hub3d.api.inputs import ParsedRequest, parse_generate_request, write_job_inputs
from hub3d.api.schemas import JobAccepted, error_responses
from hub3d.api.views import job_urls, job_view
from hub3d.errors import IdempotencyKeyReused
from hub3d.jobs.record import Job, JobStatus, new_job_id
from hub3d.jobs.scheduler import Scheduler
from hub3d.jobs.store import JobStore

__all__ = ["router"]

router = APIRouter(tags=["generate"])

_ERRORS = error_responses(400, 401, 404, 409, 413, 415, 422, 429, 503)


IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
    description="A unique string per submission (a UUID). Sent again with the same request, it"
                " returns the first job instead of queueing a second: retries are safe.")]


def _replay(earlier: Job, parsed: ParsedRequest) -> Job:
    if earlier.request_hash != parsed.digest():
        raise IdempotencyKeyReused(
            f"Idempotency-Key '{earlier.idempotency_key}' was already used for a different"
            f" request (job {earlier.id}); send a new key with a new image or new parameters")
    return earlier


async def _submit(request: Request, settings: SettingsDep, catalog: CatalogDep, pool: PoolDep,
                  scheduler: Scheduler, store: JobStore, key: str | None) -> tuple[Job, bool]:
    """The job for this request, and whether it was submitted before (same Idempotency-Key)."""
    started = time.perf_counter()
    earlier = store.by_idempotency_key(key) if key else None
    if earlier is None:
        scheduler.check_capacity()  # refuse early, before reading a large body
    parsed = await parse_generate_request(request, settings, catalog)
    if earlier is not None:
        return _replay(earlier, parsed), True
    pool.check_available(parsed.model)
    job = Job(id=new_job_id(), model=parsed.model, params=parsed.params.model_dump(mode="json"),
              has_mask=parsed.mask is not None, message="waiting in queue",
              idempotency_key=key, request_hash=parsed.digest() if key else None)
    job_dir = store.job_dir(job.id)
    try:
        await write_job_inputs(parsed, job_dir, settings)
        # intake: reading, checking and writing the upload, up to the queue
        job.timings = {"intake": round(time.perf_counter() - started, 6)}
        return scheduler.enqueue(job), False
    except sqlite3.IntegrityError:
        shutil.rmtree(job_dir, ignore_errors=True)
        winner = store.by_idempotency_key(key) if key else None
        if winner is None:
            raise
        return _replay(winner, parsed), True  # the same key raced in: the first one stands
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)  # a refused job leaves nothing behind
        raise


# The request body is documented per served model: see hub3d.api.app (the OpenAPI hook).
@router.post("/generate", status_code=202, response_model=JobAccepted, responses=_ERRORS)
async def generate(request: Request, response: Response, settings: SettingsDep,
                   catalog: CatalogDep, pool: PoolDep, scheduler: SchedulerDep, store: StoreDep,
                   idempotency_key: IdempotencyKey = None) -> JobAccepted:
    """Queue an image for 3D generation; poll status_url, then download."""
    job, replayed = await _submit(request, settings, catalog, pool, scheduler, store,
                                  idempotency_key)
    status_url, _ = job_urls(settings.root_path, job.id)
    position = store.position(job)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
        message = (f"already submitted with this Idempotency-Key: the job is"
                   f" {job.status.value}; poll {status_url}")
    else:
        message = f"queued at position {position}; poll {status_url}"
    return JobAccepted(job_id=job.id, status=job.status.value, position=position,
                       status_url=status_url, message=message)


@router.post("/generate/sync", responses={
    200: {"content": {f.media_type: {"schema": {"description": f.description}}
                      for f in formats.all_formats()},
          "description": "the generated file, in the output_format asked for"},
    **error_responses(504), **_ERRORS})
async def generate_sync(request: Request, settings: SettingsDep, catalog: CatalogDep,
                        pool: PoolDep, scheduler: SchedulerDep, store: StoreDep,
                        idempotency_key: IdempotencyKey = None) -> Response:
    """Generate and return the file in one request (use /generate behind a 300 s proxy)."""
    job, _ = await _submit(request, settings, catalog, pool, scheduler, store, idempotency_key)
    job = await scheduler.wait_terminal(job.id, settings.sync_timeout_s)
    headers = {"X-Job-Id": job.id}
    if job.status is JobStatus.COMPLETED and job.result:
        path = store.job_dir(job.id) / job.result
        return await send_file(path, job.media_type or "application/octet-stream",
                               filename=formats.format_of(path).filename(job.id),
                               headers=headers)
    status_url, _ = job_urls(settings.root_path, job.id)
    if not job.status.is_terminal():
        return error_response(504, "timeout", f"the job is still {job.status.value} after"
                              f" {settings.sync_timeout_s:.0f} s; keep polling {status_url}",
                              headers=headers, job_id=job.id)
    return JSONResponse({"error": {"code": f"job_{job.status.value}", "job_id": job.id,
                                   "message": job.error or job.message,
                                   "error_code": job.error_code,
                                   "advice": job_view(job, store).advice}},
                        status_code=422, headers=headers)
