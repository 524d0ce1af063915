"""The serving core without HTTP: a store, a pool and a scheduler on one data dir, driven under
asyncio, with real worker processes running the fixture backends in tests/backends."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub3d.config import Settings
from hub3d.jobs.record import Job, new_job_id
from hub3d.jobs.scheduler import Scheduler
from hub3d.jobs.store import JobStore
from hub3d.models.catalog import Catalog
from hub3d.workers.pool import WorkerPool
from tests.conftest import make_png

SLOW = "slow=tests.backends.testing:SlowBackend"
FAULTY = "faulty=tests.backends.faulty:FaultyBackend"
PNG = make_png(64)


def no_gpus() -> list[Any]:
    return []


@dataclass
class Core:
    """One running control plane; `restart()` replaces it by a fresh one on the same data dir."""

    data_dir: Path
    slots: int = 1
    models: tuple[str, ...] = (SLOW,)
    scheduler: Scheduler | None = None
    options: dict[str, Any] = field(default_factory=dict)  # more Settings fields

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, models=list(self.models), devices=["cpu"],
                        max_concurrent=self.slots, max_queue_size=1000, **self.options)

    async def start(self) -> Core:
        settings = self.settings()
        store = JobStore(settings.data_dir)
        catalog = Catalog.build(settings.models, settings.data_dir)
        pool = WorkerPool(settings, catalog=catalog, vram_probe=lambda device: None,
                          gpu_lister=no_gpus)
        self.scheduler = Scheduler(settings=settings, store=store, pool=pool)
        await self.scheduler.start()
        return self

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler.store.close()
            self.scheduler = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def sched(self) -> Scheduler:
        assert self.scheduler is not None
        return self.scheduler

    @property
    def store(self) -> JobStore:
        return self.sched.store

    @property
    def pool(self) -> WorkerPool:
        return self.sched.pool

    def submit(self, model: str = "slow", **params: Any) -> Job:
        job = Job(id=new_job_id(), model=model, params=params, message="waiting in queue")
        job_dir = self.store.job_dir(job.id)
        job_dir.mkdir(parents=True)
        (job_dir / "input.png").write_bytes(PNG)
        return self.sched.enqueue(job)

    def job(self, job_id: str) -> Job:
        return self.sched.get(job_id)

    async def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        job = await self.sched.wait_terminal(job_id, timeout)
        assert job.status.is_terminal(), f"job {job_id} still {job.status.value}"
        return job

    async def settle(self, timeout: float = 60.0) -> None:
        """Until no job is queued or processing (bounded)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            counts = self.store.counts()
            if counts["queued"] == 0 and counts["processing"] == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not settled after {timeout} s: {self.store.counts()}")

    async def until(self, check: Any, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not check():
            if time.monotonic() > end:
                raise AssertionError(f"condition not met after {timeout} s")
            await asyncio.sleep(0.02)


def run(coro: Any) -> Any:
    """Drive one test's coroutine (no asyncio test plugin: asyncio.run is enough)."""
    return asyncio.run(coro)
