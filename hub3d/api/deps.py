"""Annotated dependencies: the app's settings, store, pool and scheduler live on app.state.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
thread hop per dependency per request for what is an attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub3d.config import Settings
from hub3d.jobs.scheduler import Scheduler
from hub3d.jobs.store import JobStore
from hub3d.models.catalog import Catalog
from hub3d.workers.pool import WorkerPool

__all__ = ["CatalogDep", "PoolDep", "SchedulerDep", "SettingsDep", "StoreDep"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def _store(request: Request) -> JobStore:
    return request.app.state.store


async def _pool(request: Request) -> WorkerPool:
    return request.app.state.pool


async def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


SettingsDep = Annotated[Settings, Depends(_settings)]
CatalogDep = Annotated[Catalog, Depends(_catalog)]
StoreDep = Annotated[JobStore, Depends(_store)]
PoolDep = Annotated[WorkerPool, Depends(_pool)]
SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
