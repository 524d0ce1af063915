"""The local pool: worker processes per (model, device), each running up to N jobs at once on
its one loaded model; spawned on demand, replaced after a crash, unloaded to free VRAM.

A slot is one worker process's place; its capacity is how many jobs it runs at once
(--jobs-per-worker). A job holds a Lease on a slot from dispatch to its end, so the pool's
capacity counts jobs, not processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub3d.config import Settings
from hub3d.errors import ModelUnavailable, UnknownModel
from hub3d.gpu import GPU, free_vram_gb, query_gpus
from hub3d.models.base import Backend
from hub3d.models.catalog import Catalog, CatalogEntry
from hub3d.workers.process import StageCallback, WorkerProcess
from hub3d.workers.protocol import Done, Failed, Run
from hub3d.workers.slots import Lease, Slot, SlotState, Worker
from hub3d.workers.threads import thread_env

__all__ = ["Lease", "ModelEntry", "Slot", "SlotState", "Worker", "WorkerPool", "make_pool"]

# After a failed load, new jobs for that model get 503 for this long instead of a doomed retry.
LOAD_RETRY_AFTER_S = 30.0


@dataclass
class ModelEntry:
    """A served model's slots and load state; what it is comes from the catalog."""

    name: str
    model: CatalogEntry
    slots: list[Slot] = field(default_factory=list)
    error: str | None = None
    failed_at: float | None = None

    @property
    def cls(self) -> type[Backend] | None:
        return self.model.cls

    @property
    def state(self) -> str:
        if any(s.ready for s in self.slots):
            return "ready"
        if any(s.state is SlotState.LOADING for s in self.slots):
            return "loading"
        return "failed" if self.error else "unloaded"

    @property
    def devices(self) -> list[str]:
        return sorted({s.device for s in self.slots})


class WorkerPool:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        vram_probe: Callable[[str], float | None] = free_vram_gb,
        gpu_lister: Callable[[], list[GPU]] = query_gpus,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.catalog = settings, catalog
        self.vram_probe, self.gpu_lister, self.clock = vram_probe, gpu_lister, clock
        self.log_dir = settings.data_dir / "logs"
        self.models: dict[str, ModelEntry] = {}
        for model in catalog:
            self._add_model(model)
        workers = sum(len(e.slots) for e in self.models.values())
        self._threads = {name: thread_env(workers, e.slots[0].capacity if e.slots else 1)
                         for name, e in self.models.items()}

    def _add_model(self, model: CatalogEntry) -> None:
        entry = ModelEntry(model.name, model, error=model.error)
        if model.cls is not None:
            per_device = self.settings.max_concurrent
            entry.slots = [Slot(model.name, device, i, self._jobs_for(model.cls, device))
                           for device in self._devices_for(model.cls)
                           for i in range(per_device)]
        self.models[model.name] = entry

    def _jobs_for(self, cls: type[Backend], device: str) -> int:
        if self.settings.jobs_per_worker is not None:
            return self.settings.jobs_per_worker
        kind = "cuda" if device.startswith("cuda") else "cpu"
        return max(1, cls.jobs_per_worker.get(kind, 1))

    def _devices_for(self, cls: type[Backend]) -> list[str]:
        if self.settings.devices != ["auto"]:
            return list(self.settings.devices)
        if cls.device_kind == "cuda":
            gpus = self.gpu_lister()
            if gpus:
                return [f"cuda:{g.index}" for g in gpus]
        return ["cpu"]

    # what the control plane asks ---------------------------------------------------------------
    def entry(self, model: str) -> ModelEntry:
        if model not in self.models:
            known = ", ".join(self.models)
            raise UnknownModel(f"model '{model}' is not served here; this server serves: {known}")
        return self.models[model]

    def backend(self, model: str) -> type[Backend]:
        return self.catalog.backend(model)

    def capacity(self) -> int:
        """Jobs that can run at once, over all models and devices (a lost one's aside)."""
        return sum(s.capacity for e in self.models.values() for s in e.slots if not s.lost)

    def running(self) -> set[str]:
        """The jobs a slot is working on now."""
        return {j for e in self.models.values() for s in e.slots for j in s.jobs}

    def check_available(self, model: str) -> None:
        """503 while a model's last load failed recently and no worker of it is up."""
        entry = self.entry(model)
        self.backend(model)
        recent = entry.failed_at is not None and self.clock() - entry.failed_at < LOAD_RETRY_AFTER_S
        if entry.error and recent and entry.state != "ready":
            raise ModelUnavailable(
                f"model '{model}' failed to load: {entry.error}. Fix the cause (see"
                " `hub3d doctor`); the next job retries the load after"
                f" {int(LOAD_RETRY_AFTER_S)} s."
            )

    # a job's lease -----------------------------------------------------------------------------
    def acquire(self, model: str, job_id: str) -> Lease | None:
        """A place for the job: on the slot with the fewest jobs (so jobs spread over the
        devices and workers there are), a loaded worker before a loading or stopped one."""
        free = [s for s in self.entry(model).slots if s.free]
        if not free:
            return None
        slot = min(free, key=lambda s: (len(s.jobs), 0 if s.ready else 1 if s.state is
                                        SlotState.LOADING else 2, s.last_used))
        slot.jobs.add(job_id)
        return Lease(slot, job_id)

    def is_ready(self, lease: Lease) -> bool:
        return lease.slot.ready

    async def release(self, lease: Lease) -> None:
        slot = lease.slot
        slot.jobs.discard(lease.job_id)
        slot.last_used = self.clock()
        if slot.worker is not None and not slot.worker.alive and slot.state is SlotState.READY:
            slot.stopped()  # it died: the next job starts a fresh one
        if slot.draining and not slot.jobs and slot.state is SlotState.READY:
            await self._stop_worker(slot)

    async def ensure_started(self, lease: Lease, on_stage: StageCallback) -> None:
        """The lease's worker loaded; the first job of a stopped slot starts it, the others
        wait for that same load."""
        slot = lease.slot
        if slot.ready:
            return
        if slot.state is SlotState.READY:  # its worker died while idle
            slot.stopped()
        if slot.starting is None:
            slot.starting = asyncio.get_running_loop().create_future()
            slot.starting.add_done_callback(lambda f: f.exception())  # read, even if unawaited
            try:
                await self._start(slot, on_stage)
            except BaseException as exc:
                slot.starting.set_exception(exc)
                raise
            else:
                slot.starting.set_result(None)
            finally:
                slot.starting = None
        else:
            on_stage("loading_model", f"waiting for {slot.model} to load on {slot.device}")
            await asyncio.shield(slot.starting)

    def _make_worker(self, slot: Slot, entry: ModelEntry) -> Worker:
        """A worker for the slot, not yet started: a child process here (the Ray pool makes
        an actor on one of the cluster's nodes)."""
        return WorkerProcess(
            model_spec=entry.model.spec, device=slot.device, python=entry.model.python,
            env={**self._threads[slot.model], **entry.model.worker_env}, jobs=slot.capacity,
            warmup=self.settings.warmup,
            log_path=self.log_dir / f"worker-{slot.model}-{slot.device.replace(':', '')}"
                                    f"-{slot.index}.log",
        )

    async def _start(self, slot: Slot, on_stage: StageCallback) -> None:
        entry = self.entry(slot.model)
        assert entry.cls is not None
        await self._make_room(slot, entry.cls, on_stage)
        slot.worker = self._make_worker(slot, entry)
        slot.loading()
        try:
            await slot.worker.start()
        except BaseException as exc:
            slot.loaded(False)
            slot.worker = None
            if isinstance(exc, Exception):
                entry.error, entry.failed_at = str(exc), self.clock()
            raise
        slot.loaded(True)
        entry.error = entry.failed_at = None

    async def _make_room(self, slot: Slot, cls: type[Backend], on_stage: StageCallback) -> None:
        """End idle workers of other models on this device, least recently used first."""
        need = cls.vram_gb
        free = self.vram_probe(slot.device) if need else None
        if free is None or free >= need:
            return
        victims = sorted(
            (s for e in self.models.values() for s in e.slots
             if s.device == slot.device and s.model != slot.model and s.idle and s.ready),
            key=lambda s: s.last_used,
        )
        for victim in victims:
            on_stage("loading_model", f"unloading idle model '{victim.model}' on {slot.device} to "
                                      f"free VRAM ({free:.1f} GB free, {need:.1f} GB needed)")
            await self._stop_worker(victim)
            free = self.vram_probe(slot.device)
            if free is None or free >= need:
                return

    async def _stop_worker(self, slot: Slot) -> None:
        slot.stopping()
        try:
            if slot.worker is not None:
                await slot.worker.stop()
        finally:
            slot.stopped()

    async def run(self, lease: Lease, request: Run, on_stage: StageCallback) -> Done | Failed:
        """Run the job on its worker; raises WorkerDied (with every other job it held)."""
        worker = lease.slot.worker
        assert worker is not None and lease.job_id in lease.slot.jobs
        answer = await worker.run(request, on_stage)
        if isinstance(answer, Failed) and answer.restart:
            lease.slot.draining = True  # replaced once its other jobs end (release)
        return answer

    def cancel(self, job_id: str) -> bool:
        """Stop a running job: alone on its worker, the worker is killed (that frees the card at
        once; a fresh one loads for the next job); beside other jobs, it stops at its next
        stage, and they go on. While its worker loads, the load goes on (other jobs may wait
        for it; the next one uses it) and the job is dropped when it ends."""
        for entry in self.models.values():
            for slot in entry.slots:
                if job_id in slot.jobs and slot.worker is not None:
                    if slot.ready and len(slot.jobs) == 1:
                        slot.worker.kill()
                    elif slot.ready:
                        slot.worker.cancel(job_id)
                    return True
        return False

    def abandon(self, lease: Lease, why: str) -> None:
        """A job that will not end by itself (past its timeout): its worker is ended, and the
        other jobs it held are told they may run again."""
        if lease.slot.worker is not None:
            lease.slot.worker.kill(reason=why)

    async def unload(self, model: str) -> int:
        """End every idle worker of `model` (really frees its memory). Returns how many."""
        stopped = 0
        for slot in self.entry(model).slots:
            if slot.worker is not None and slot.idle:
                await self._stop_worker(slot)
                stopped += 1
        return stopped

    async def shutdown(self) -> None:
        workers = [s.worker for e in self.models.values() for s in e.slots if s.worker]
        await asyncio.gather(*(w.stop(timeout=3.0) for w in workers), return_exceptions=True)

    def describe(self, model: str) -> dict[str, Any]:
        entry = self.entry(model)
        return {
            "state": entry.state,
            "device": ",".join(entry.devices) or None,
            "devices": entry.devices,
            "workers": [self._worker_view(s) for s in entry.slots],
            "error": entry.error,
            "python": entry.model.python,
        }

    @staticmethod
    def _worker_view(slot: Slot) -> dict[str, Any]:
        info = slot.worker.info if slot.worker is not None else None
        return {"device": slot.device, "pid": slot.worker.pid if slot.worker else None,
                "state": slot.public_state, "job_id": slot.job_id, "jobs": sorted(slot.jobs),
                "capacity": slot.capacity, "load_s": info.load_s if info else None,
                "warmup_s": info.warmup_s if info else None}



def make_pool(settings: Settings, *, catalog: Catalog, **seams: Any) -> WorkerPool:
    """The local pool, or the Ray pool when the settings name a Ray cluster."""
    if settings.ray_address:
        from hub3d.workers.ray_pool import RayPool

        return RayPool(settings, catalog=catalog)
    return WorkerPool(settings, catalog=catalog, **seams)
