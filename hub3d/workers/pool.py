"""Worker slots per (model, device): spawn on demand, restart after a crash, unload for VRAM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hub3d.config import Settings
from hub3d.errors import ModelUnavailable, UnknownModel
from hub3d.gpu import GPU, free_vram_gb, query_gpus
from hub3d.models.base import Backend
from hub3d.models.catalog import Catalog, CatalogEntry
from hub3d.workers.process import StageCallback, WorkerDied, WorkerProcess
from hub3d.workers.protocol import Done, Failed, Run

__all__ = ["ModelEntry", "Slot", "SlotState", "WorkerPool"]

# After a failed load, new jobs for that model get 503 for this long instead of a doomed retry.
LOAD_RETRY_AFTER_S = 30.0


class SlotState(str, Enum):
    """Where a slot is. STOPPED and READY are free; the others are held by one task."""

    STOPPED = "stopped"  # no worker process
    READY = "ready"  # a loaded worker, waiting for a job
    BUSY = "busy"  # held for a job (or a preload); its worker may still need starting
    LOADING = "loading"  # held; its worker is starting and loading the model
    STOPPING = "stopping"  # held; its worker is being ended (unload, or to free VRAM)


_FREE = (SlotState.STOPPED, SlotState.READY)


@dataclass
class Slot:
    """One worker process's place, for one model on one device. Each state change is a method
    that checks the state it starts from."""

    model: str
    device: str
    index: int
    worker: WorkerProcess | None = None
    state: SlotState = SlotState.STOPPED
    last_used: float = 0.0
    job_id: str | None = None

    @property
    def free(self) -> bool:
        return self.state in _FREE

    @property
    def ready(self) -> bool:
        """A loaded worker is alive (a worker can die while READY: then it is not)."""
        return (self.state in (SlotState.READY, SlotState.BUSY) and self.worker is not None
                and self.worker.alive)

    @property
    def public_state(self) -> str:
        """What /models shows per worker: loading, busy, ready or stopped."""
        if self.state is SlotState.LOADING:
            return "loading"
        if not self.ready:
            return "stopped"
        return "busy" if self.state is SlotState.BUSY else "ready"

    def _move(self, to: SlotState, *allowed: SlotState) -> None:
        if self.state not in allowed:
            raise RuntimeError(f"slot {self.model}/{self.device}/{self.index}: cannot go"
                               f" {self.state.value} → {to.value}")
        self.state = to

    def take(self) -> None:
        self._move(SlotState.BUSY, *_FREE)

    def loading(self) -> None:
        self._move(SlotState.LOADING, SlotState.BUSY)

    def loaded(self) -> None:
        self._move(SlotState.BUSY, SlotState.LOADING)

    def stopping(self) -> None:
        self._move(SlotState.STOPPING, *_FREE)

    def release(self, now: float) -> None:
        """Back to free: READY with a live worker, else STOPPED."""
        alive = self.worker is not None and self.worker.alive
        if not alive:
            self.worker = None
        self._move(SlotState.READY if alive else SlotState.STOPPED, SlotState.BUSY,
                   SlotState.LOADING, SlotState.STOPPING)
        self.job_id, self.last_used = None, now


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

    def _add_model(self, model: CatalogEntry) -> None:
        entry = ModelEntry(model.name, model, error=model.error)
        if model.cls is not None:
            per_device = self.settings.max_concurrent
            entry.slots = [Slot(model.name, device, i) for device in self._devices_for(model.cls)
                           for i in range(per_device)]
        self.models[model.name] = entry

    def _devices_for(self, cls: type[Backend]) -> list[str]:
        if self.settings.devices != ["auto"]:
            return list(self.settings.devices)
        if cls.device_kind == "cuda":
            gpus = self.gpu_lister()
            if gpus:
                return [f"cuda:{g.index}" for g in gpus]
        return ["cpu"]

    def entry(self, model: str) -> ModelEntry:
        if model not in self.models:
            known = ", ".join(self.models)
            raise UnknownModel(f"model '{model}' is not served here; this server serves: {known}")
        return self.models[model]

    def backend(self, model: str) -> type[Backend]:
        return self.catalog.backend(model)

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

    def acquire(self, model: str) -> Slot | None:
        """An idle slot for `model`, preferring one whose worker is already loaded."""
        idle = [s for s in self.entry(model).slots if s.free]
        if not idle:
            return None
        slot = min(idle, key=lambda s: (not s.ready, s.last_used))
        slot.take()
        return slot

    def release(self, slot: Slot) -> None:
        slot.release(self.clock())

    async def ensure_started(self, slot: Slot, on_stage: StageCallback) -> None:
        if slot.ready:
            return
        entry = self.entry(slot.model)
        assert entry.cls is not None
        await self._make_room(slot, entry.cls, on_stage)
        slot.worker = WorkerProcess(
            model_spec=entry.model.spec, device=slot.device, python=entry.model.python,
            env=entry.model.worker_env,
            log_path=self.log_dir / f"worker-{slot.model}-{slot.device.replace(':', '')}"
                                    f"-{slot.index}.log",
        )
        slot.loading()
        try:
            await slot.worker.start()
        except Exception as exc:
            slot.worker = None
            entry.error, entry.failed_at = str(exc), self.clock()
            raise
        finally:
            slot.loaded()
        entry.error = entry.failed_at = None

    async def _make_room(self, slot: Slot, cls: type[Backend], on_stage: StageCallback) -> None:
        """End idle workers of other models on this device, least recently used first."""
        need = cls.vram_gb
        free = self.vram_probe(slot.device) if need else None
        if free is None or free >= need:
            return
        victims = sorted(
            (s for e in self.models.values() for s in e.slots
             if s.device == slot.device and s.model != slot.model and s.free and s.ready),
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
            assert slot.worker is not None
            await slot.worker.stop()
        finally:
            slot.worker = None
            slot.release(self.clock())

    async def run(self, slot: Slot, request: Run, on_stage: StageCallback) -> Done | Failed:
        assert slot.worker is not None and slot.state is SlotState.BUSY
        slot.job_id = request.job_id
        try:
            msg = await slot.worker.run(request, on_stage)
        except WorkerDied:
            slot.worker = None
            raise
        if not slot.worker.alive:
            slot.worker = None
        return msg

    def kill_job(self, job_id: str) -> bool:
        """Kill the worker holding `job_id` (cancel of a running job); it restarts on demand."""
        for entry in self.models.values():
            for slot in entry.slots:
                if slot.job_id == job_id and slot.worker is not None:
                    slot.worker.kill()
                    return True
        return False

    async def unload(self, model: str) -> int:
        """End every idle worker of `model` (really frees its memory). Returns how many."""
        stopped = 0
        for slot in self.entry(model).slots:
            if slot.worker is not None and slot.free:
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
            "workers": [
                {"device": s.device, "pid": s.worker.pid if s.worker else None,
                 "state": s.public_state, "job_id": s.job_id}
                for s in entry.slots
            ],
            "error": entry.error,
            "python": entry.model.python,
        }
