"""A worker's place (Slot), its states, and a job's lease on it — what every pool shares.

A slot is one worker's place, for one model on one device (a process of the local pool, an
actor on a Ray cluster); its capacity is how many jobs it runs at once (--jobs-per-worker). A
job holds a Lease on a slot from dispatch to its end, so capacity counts jobs, not processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from hub3d.workers.process import StageCallback
from hub3d.workers.protocol import Done, Failed, Ready, Run

__all__ = ["Lease", "Slot", "SlotState", "Worker"]


class Worker(Protocol):
    """What a slot holds: a process here (WorkerProcess), an actor on a Ray cluster
    (ray_pool.RayWorker). Either runs several jobs at once on one loaded model."""

    info: Ready | None

    @property
    def alive(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    async def start(self) -> Ready: ...

    async def run(self, request: Run, on_stage: StageCallback) -> Done | Failed: ...

    def cancel(self, job_id: str) -> None: ...

    def kill(self, reason: str | None = None) -> None: ...

    async def stop(self, timeout: float = 5.0) -> None: ...


class SlotState(str, Enum):
    """Where a slot's worker process is. Jobs are counted apart (Slot.jobs)."""

    STOPPED = "stopped"  # no worker process
    LOADING = "loading"  # its worker is starting and loading the model
    READY = "ready"  # a loaded worker
    STOPPING = "stopping"  # its worker is being ended (unload, VRAM, replacement)


@dataclass
class Slot:
    """One worker process's place, for one model on one device. Each state change is a method
    that checks the state it starts from."""

    model: str
    device: str
    index: int
    capacity: int = 1
    worker: Worker | None = None
    state: SlotState = SlotState.STOPPED
    last_used: float = 0.0
    jobs: set[str] = field(default_factory=set)
    draining: bool = False  # replace the worker once its jobs end (after an OOM)
    starting: asyncio.Future[None] | None = None  # the load the slot's jobs wait for
    lost: bool = False  # its machine is gone (a Ray node): it takes no job until it is back

    @property
    def job_id(self) -> str | None:
        """One of its jobs (the only one, with capacity 1); None when idle."""
        return next(iter(sorted(self.jobs)), None)

    @property
    def free(self) -> bool:
        """It can take another job now."""
        return (len(self.jobs) < self.capacity and not self.draining and not self.lost
                and self.state is not SlotState.STOPPING)

    @property
    def idle(self) -> bool:
        return not self.jobs and self.state in (SlotState.STOPPED, SlotState.READY)

    @property
    def ready(self) -> bool:
        """A loaded worker is alive (a worker can die while READY: then it is not)."""
        return (self.state is SlotState.READY and self.worker is not None
                and self.worker.alive)

    @property
    def public_state(self) -> str:
        """What /models shows per worker: loading, busy, ready or stopped."""
        if self.state is SlotState.LOADING:
            return "loading"
        if self.lost:
            return "lost"
        if not self.ready:
            return "stopped"
        return "busy" if self.jobs else "ready"

    def _move(self, to: SlotState, *allowed: SlotState) -> None:
        if self.state not in allowed:
            raise RuntimeError(f"slot {self.model}/{self.device}/{self.index}: cannot go"
                               f" {self.state.value} → {to.value}")
        self.state = to

    def loading(self) -> None:
        self._move(SlotState.LOADING, SlotState.STOPPED)

    def loaded(self, ok: bool) -> None:
        self._move(SlotState.READY if ok else SlotState.STOPPED, SlotState.LOADING)

    def stopping(self) -> None:
        self._move(SlotState.STOPPING, SlotState.READY, SlotState.STOPPED)

    def stopped(self) -> None:
        self._move(SlotState.STOPPED, SlotState.STOPPING, SlotState.READY, SlotState.STOPPED)
        self.worker, self.draining = None, False


@dataclass(frozen=True)
class Lease:
    """A job's place on a slot, from dispatch to its end."""

    slot: Slot
    job_id: str

    @property
    def device(self) -> str:
        return self.slot.device
