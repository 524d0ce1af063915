"""Worker slots per (model, device): spawn on demand, restart after a crash, unload for VRAM."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub3d.config import Settings
from hub3d.errors import ModelUnavailable, UnknownModel
from hub3d.gpu import GPU, free_vram_gb, query_gpus
from hub3d.models.base import Backend
from hub3d.models.registry import load_backend_class
from hub3d.workers.process import StageCallback, WorkerDied, WorkerProcess

__all__ = ["ModelEntry", "Slot", "WorkerPool"]

# After a failed load, new jobs for that model get 503 for this long instead of a doomed retry.
LOAD_RETRY_AFTER_S = 30.0


@dataclass
class Slot:
    model: str
    device: str
    index: int
    worker: WorkerProcess | None = None
    busy: bool = False
    loading: bool = False
    last_used: float = 0.0
    job_id: str | None = None

    @property
    def ready(self) -> bool:
        return self.worker is not None and self.worker.alive and not self.loading


@dataclass
class ModelEntry:
    name: str
    spec: str
    cls: type[Backend] | None
    slots: list[Slot] = field(default_factory=list)
    error: str | None = None
    failed_at: float | None = None
    python: str | None = None

    @property
    def state(self) -> str:
        if any(s.ready for s in self.slots):
            return "ready"
        if any(s.loading for s in self.slots):
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
        vram_probe: Callable[[str], float | None] = free_vram_gb,
        gpu_lister: Callable[[], list[GPU]] = query_gpus,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.vram_probe, self.gpu_lister, self.clock = vram_probe, gpu_lister, clock
        self.log_dir = settings.data_dir / "logs"
        self.models: dict[str, ModelEntry] = {}
        for spec in settings.models:
            self._add_model(spec)

    def _add_model(self, spec: str) -> None:
        name = spec.partition("=")[0]
        try:
            cls = load_backend_class(spec)
        except Exception as exc:  # a broken backend degrades health, never crashes the server
            self.models[name] = ModelEntry(name, spec, None, error=f"cannot import backend: {exc}")
            return
        # HUB3D_PYTHON_<NAME> for any model, or the backend's own variable (HUB3D_SAM3D_PYTHON).
        python = os.environ.get(f"HUB3D_PYTHON_{name.upper()}") or (
            os.environ.get(cls.python_env_var) if cls.python_env_var else None)
        entry = ModelEntry(name, spec, cls, python=python)
        per_device = self.settings.max_concurrent
        entry.slots = [
            Slot(name, device, i) for device in self._devices_for(cls) for i in range(per_device)
        ]
        self.models[name] = entry

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
        entry = self.entry(model)
        if entry.cls is None:
            raise ModelUnavailable(f"model '{model}' is unavailable: {entry.error}")
        return entry.cls

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
        idle = [s for s in self.entry(model).slots if not s.busy]
        if not idle:
            return None
        slot = min(idle, key=lambda s: (not s.ready, s.last_used))
        slot.busy = True
        return slot

    def release(self, slot: Slot) -> None:
        slot.busy, slot.job_id, slot.last_used = False, None, self.clock()

    async def ensure_started(self, slot: Slot, on_stage: StageCallback) -> None:
        if slot.ready:
            return
        entry = self.entry(slot.model)
        assert entry.cls is not None
        await self._make_room(slot, entry.cls, on_stage)
        slot.worker = WorkerProcess(
            model_spec=entry.spec, device=slot.device, python=entry.python,
            log_path=self.log_dir / f"worker-{slot.model}-{slot.device.replace(':', '')}"
                                    f"-{slot.index}.log",
        )
        slot.loading = True
        try:
            await slot.worker.start()
        except Exception as exc:
            slot.worker = None
            entry.error, entry.failed_at = str(exc), self.clock()
            raise
        finally:
            slot.loading = False
        entry.error = entry.failed_at = None

    async def _make_room(self, slot: Slot, cls: type[Backend], on_stage: StageCallback) -> None:
        """End idle workers of other models on this device, least recently used first."""
        need = cls.vram_gb
        free = self.vram_probe(slot.device) if need else None
        if free is None or free >= need:
            return
        victims = sorted(
            (s for e in self.models.values() for s in e.slots
             if s.device == slot.device and s.model != slot.model and not s.busy and s.ready),
            key=lambda s: s.last_used,
        )
        for victim in victims:
            on_stage("loading_model", f"unloading idle model '{victim.model}' on {slot.device} to "
                                      f"free VRAM ({free:.1f} GB free, {need:.1f} GB needed)")
            victim.busy = True
            try:
                assert victim.worker is not None
                await victim.worker.stop()
                victim.worker = None
            finally:
                victim.busy = False
            free = self.vram_probe(slot.device)
            if free is None or free >= need:
                return

    async def run(self, slot: Slot, request: dict[str, Any], on_stage: StageCallback) -> dict:
        assert slot.worker is not None
        slot.job_id = request["job_id"]
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
            if slot.worker is not None and not slot.busy:
                slot.busy = True
                try:
                    await slot.worker.stop()
                finally:
                    slot.worker, slot.busy = None, False
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
                 "state": "loading" if s.loading else ("busy" if s.busy and s.ready else
                          ("ready" if s.ready else "stopped")), "job_id": s.job_id}
                for s in entry.slots
            ],
            "error": entry.error,
            "python": entry.python,
        }
