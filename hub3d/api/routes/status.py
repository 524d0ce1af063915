"""/health, /queue, /models (+ unload)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from hub3d import __version__, formats
from hub3d.api.auth import key_ok, require_api_key
from hub3d.api.deps import PoolDep, SchedulerDep, SettingsDep, StoreDep
from hub3d.api.schemas import (
    FormatInfo,
    HealthResponse,
    ModelInfo,
    QueueView,
    WeightsInfo,
    error_responses,
)
from hub3d.jobs.record import JobStatus

__all__ = ["open_router", "router"]

open_router = APIRouter(tags=["status"])
router = APIRouter(tags=["status"])


def _queue_counts(request: Request) -> dict[str, int]:
    settings, store, pool = (request.app.state.settings, request.app.state.store,
                             request.app.state.pool)
    counts = store.counts()
    slots = pool.capacity()  # jobs that run at once, not processes
    # "max_concurrent" was this number's first name; it stays, as clients read it.
    return {"queued": counts["queued"], "processing": counts["processing"],
            "max_queue_size": settings.max_queue_size, "slots": slots, "max_concurrent": slots}


@open_router.get("/health", response_model=HealthResponse, response_model_exclude_none=True)
async def health(request: Request, scheduler: SchedulerDep, pool: PoolDep,
                 settings: SettingsDep) -> HealthResponse:
    """Server state; without the API key (when one is set) only `status`."""
    models = {name: pool.describe(name) for name in pool.models}
    failed = any(m["state"] == "failed" for m in models.values())
    status = "starting" if not scheduler.started else ("degraded" if failed else "healthy")
    if not key_ok(request):
        return HealthResponse(status=status)
    gpus = [asdict(g) for g in await run_in_threadpool(pool.gpu_lister)]
    first = gpus[0] if gpus else None
    return HealthResponse(
        status=status, version=__version__, default_model=settings.default_model,
        model_loaded=any(m["state"] == "ready" for m in models.values()),
        models={n: {k: m[k] for k in ("state", "device", "error")} for n, m in models.items()},
        cuda=bool(gpus),
        gpu={k: first[k] for k in ("name", "vram_gb", "vram_free_gb")} if first else None,
        gpus=gpus, queue=_queue_counts(request),
    )


@router.get("/queue", response_model=QueueView, responses=error_responses(401))
async def queue(request: Request, store: StoreDep) -> QueueView:
    """Queue counts and the order of waiting and running jobs."""
    order: list[dict[str, Any]] = [
        {"job_id": j.id, "status": j.status.value, "model": j.model, "stage": j.stage,
         "device": j.device, "position": 0}
        for j in store.by_status(JobStatus.PROCESSING)
    ]
    order += [{"job_id": j.id, "status": j.status.value, "model": j.model, "stage": None,
               "device": None, "position": i}
              for i, j in enumerate(store.queued(), start=1)]
    return QueueView(**_queue_counts(request), order=order)


def _model_info(name: str, request: Request) -> ModelInfo:
    pool, catalog = request.app.state.pool, request.app.state.catalog
    model, described = catalog.entry(name), pool.describe(name)
    cls, files = model.cls, model.files
    return ModelInfo(
        name=name, description=(cls.description if cls else "") or "",
        default=name == catalog.default, state=described["state"],
        device=described["device"], devices=described["devices"], error=described["error"],
        device_kind=cls.device_kind if cls else "unknown", vram_gb=cls.vram_gb if cls else 0.0,
        parameters=model.parameters_schema() if cls else {},
        workers=described["workers"], python=model.python,
        formats=[FormatInfo(name=f.name, suffix=f.suffix, media_type=f.media_type,
                            description=f.description, native=f.name in cls.native_formats)
                 for f in map(formats.get, model.formats)] if cls else [],
        python_from=model.python_from,
        weights=None if files is None else WeightsInfo(
            checkpoint=files.checkpoint, source=files.source.value, offline=files.offline,
            missing=list(files.missing), summary=model.files_line() or ""),
    )


@router.get("/models", response_model=list[ModelInfo], responses=error_responses(401))
async def models(request: Request, pool: PoolDep) -> list[ModelInfo]:
    """Served backends: state, devices and the JSON schema of their parameters."""
    return [_model_info(name, request) for name in pool.models]


@router.post("/models/{name}/unload", response_model=ModelInfo,
             responses=error_responses(401, 404),
             dependencies=[Depends(require_api_key)])
async def unload(name: str, request: Request, pool: PoolDep) -> ModelInfo:
    """End the model's idle workers, freeing their memory; the next job loads it again."""
    await pool.unload(name)
    return _model_info(name, request)
