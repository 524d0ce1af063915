"""The Ray pool: the local pool's slots, leases and scheduling, with each worker a Ray actor on
one of the cluster's nodes (`hub3d serve --ray-address ADDRESS`, `hub3d[ray]`).

One slot per model per GPU of the cluster (the actor asks `num_gpus=1`; Ray gives it the card as
`cuda:0`), or one per node for a CPU model (`num_cpus=1`), pinned to its node. The control plane
(API, store, scheduler) does not know which pool it has: a `RayWorker` has the methods of a
`WorkerProcess`. A job's input and result travel as bytes through Ray; the result is written
here, atomically, as the local pool's workers write theirs. A node lost mid-job shows as an
actor that cannot be reached: its slot is set aside and its jobs go back to the queue once.
Nodes that join later get slots at the next look at the cluster (every REFRESH_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from hub3d.config import Settings
from hub3d.fsutil import atomic_write_bytes
from hub3d.gpu import GPU
from hub3d.models.base import Backend
from hub3d.models.catalog import Catalog
from hub3d.workers.pool import ModelEntry, WorkerPool
from hub3d.workers.process import ModelLoadFailed, StageCallback, WorkerDied
from hub3d.workers.protocol import Done, Failed, LoadFailed, Ready, Run, Stage
from hub3d.workers.slots import Lease, Slot, Worker

__all__ = ["PLACE_S", "RayPool", "RayWorker", "connect"]

log = logging.getLogger("hub3d.workers")
PLACE_S = 120.0  # an actor not placed by then: its node's GPUs or CPUs are all held
REFRESH_S = 10.0


def connect(address: str) -> Any:
    """`ray.init` to the cluster at `address` (`auto`: the one this machine is part of)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray-address needs Ray in the server's Python: pip install "
                           "'hub3d[ray]' (the same Ray and Python version as the cluster's)") \
            from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, namespace="hub3d", log_to_driver=False,
                     logging_level=logging.ERROR)
        except Exception as exc:
            raise RuntimeError(f"cannot join the Ray cluster at {address}: {exc}. Start it "
                               "first (docs/cluster.md); a cluster with token authentication "
                               "also needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN here") from exc
    return ray


class RayWorker:
    """A model's actor on one node, seen from the control plane as a worker process is."""

    def __init__(self, *, model_spec: str, label: str, node_id: str, gpu: bool, jobs: int,
                 warmup: str, env: dict[str, str]) -> None:
        self.model_spec, self.label, self.node_id, self.gpu = model_spec, label, node_id, gpu
        self.jobs, self.warmup, self.env = jobs, warmup, env
        self.model = model_spec.partition("=")[0]
        self.actor: Any = None
        self.info: Ready | None = None
        self._pid: int | None = None
        self._dead = False
        self._killed_for: str | None = None
        self.lost = False  # it stopped answering: its node is probably gone

    @property
    def alive(self) -> bool:
        return self.actor is not None and not self._dead

    @property
    def pid(self) -> int | None:
        return self._pid

    async def start(self) -> Ready:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from hub3d.workers.ray_actor import RUNTIME_ENV, ModelActor

        runtime_env = {"env_vars": {**RUNTIME_ENV["env_vars"], **self.env}}
        self.actor = ray.remote(ModelActor).options(
            num_gpus=1 if self.gpu else 0, num_cpus=0 if self.gpu else 1,
            max_restarts=0, max_task_retries=0, max_concurrency=max(8, self.jobs * 2),
            runtime_env=runtime_env,
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_id, soft=False),
        ).remote(self.model_spec, "cuda:0" if self.gpu else "cpu", self.jobs, self.warmup)
        try:
            status = await asyncio.wait_for(self.actor.ready.remote(), PLACE_S)
            where = await self.actor.where.remote()
        except asyncio.TimeoutError:
            self.kill()
            need = "a GPU" if self.gpu else "a CPU"
            raise ModelLoadFailed(
                f"no Ray actor for {self.model} could start on {self.label} within "
                f"{PLACE_S:.0f} s: it needs {need} of that node, and all are held (unload "
                "another model) or the node is gone") from None
        except Exception as exc:  # the actor died while loading (its process, its node)
            self._dead = True
            raise ModelLoadFailed(f"the Ray actor for {self.model} on {self.label} died while"
                                  f" loading: {type(exc).__name__}: {exc}") from exc
        if isinstance(status, LoadFailed):
            self.kill()
            raise ModelLoadFailed(status.error)
        self.info, self._pid = status, int(where["pid"])
        return status

    async def run(self, request: Run, on_stage: StageCallback) -> Done | Failed:
        """Send the job's files as bytes; write its result here; raises WorkerDied."""
        from hub3d.workers.ray_actor import Finished

        if not self.alive:
            raise WorkerDied(f"the Ray actor for {self.model} on {self.label} is gone")
        job_dir = Path(request.job_dir)
        image = (job_dir / "input.png").read_bytes()
        mask = (job_dir / "mask.png").read_bytes() if request.has_mask else None
        stream = self.actor.run.remote(request.job_id, request.params, image, mask)
        try:
            async for ref in stream:
                item = await ref
                if isinstance(item, Stage):
                    on_stage(item.stage, item.message)
                elif isinstance(item, Finished):
                    atomic_write_bytes(job_dir / item.done.result, item.data)
                    asyncio.create_task(self._extras(stream, job_dir))
                    return item.done
                elif isinstance(item, Failed):
                    return item
        except Exception as exc:
            raise self._died(exc) from exc
        raise WorkerDied(f"the Ray actor for {self.model} on {self.label} ended the job "
                         "without an answer")

    async def _extras(self, stream: Any, job_dir: Path) -> None:
        """Files no client waits for (preview.png), after the job is reported done."""
        from hub3d.workers.ray_actor import ResultFile

        with contextlib.suppress(Exception):
            async for ref in stream:
                item = await ref
                if isinstance(item, ResultFile) and "/" not in item.name:
                    atomic_write_bytes(job_dir / item.name, item.data)

    def _died(self, exc: Exception) -> WorkerDied:
        name = type(exc).__name__
        if name == "TaskCancelledError":
            return WorkerDied(f"the job's call to {self.label} was cancelled", requeue=True)
        self._dead = True
        if self._killed_for is not None:  # hub3d ended it: its other jobs did nothing wrong
            return WorkerDied(f"{self._killed_for}; the Ray actor on {self.label} was ended",
                              requeue=True)
        if name == "ActorUnavailableError":  # no answer from its node: lost, or cut off
            self.lost = True
            return WorkerDied(f"the Ray node holding {self.model}'s worker ({self.label}) "
                              "stopped answering (node lost?)", requeue=True)
        return WorkerDied(f"the Ray actor for {self.model} on {self.label} died ({name}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")

    def cancel(self, job_id: str) -> None:
        if self.alive:
            self.actor.cancel.remote(job_id)

    def kill(self, reason: str | None = None) -> None:
        if reason is not None and self._killed_for is None:
            self._killed_for = reason
        if self.actor is not None and not self._dead:
            import ray

            with contextlib.suppress(Exception):
                ray.kill(self.actor, no_restart=True)
        self._dead = True

    async def stop(self, timeout: float = 5.0) -> None:
        self.kill()


class RayPool(WorkerPool):
    """WorkerPool whose slots are the cluster's GPUs (or nodes, for CPU models)."""

    def __init__(self, settings: Settings, *, catalog: Catalog, **seams: Any) -> None:
        assert settings.ray_address is not None
        self.ray = connect(settings.ray_address)
        self._nodes: dict[str, tuple[str, bool]] = {}  # slot device → (node id, gpu)
        self._refreshed = 0.0
        super().__init__(settings, catalog=catalog, vram_probe=lambda device: None,
                         gpu_lister=self._cluster_gpus, **seams)

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    @staticmethod
    def _label(node: dict[str, Any], what: str) -> str:
        return f"{what}@{node['NodeManagerAddress']}/{node['NodeID'][:8]}"

    def _devices_for(self, cls: type[Backend]) -> list[str]:
        devices = []
        nodes = self._alive_nodes()
        gpus = cls.device_kind == "cuda" and any(n["Resources"].get("GPU") for n in nodes)
        for node in nodes:
            count = int(node["Resources"].get("GPU", 0)) if gpus else 1
            for i in range(count):
                device = self._label(node, f"cuda:{i}" if gpus else "cpu")
                self._nodes[device] = (node["NodeID"], gpus)
                devices.append(device)
        return devices

    def _make_worker(self, slot: Slot, entry: ModelEntry) -> Worker:
        node_id, gpu = self._nodes[slot.device]
        return RayWorker(model_spec=entry.model.spec, label=slot.device, node_id=node_id,
                         gpu=gpu, jobs=slot.capacity, warmup=self.settings.warmup,
                         env=dict(entry.model.worker_env))

    def acquire(self, model: str, job_id: str) -> Lease | None:
        self._refresh()
        return super().acquire(model, job_id)

    async def release(self, lease: Lease) -> None:
        worker = lease.slot.worker
        if isinstance(worker, RayWorker) and worker.lost:
            lease.slot.lost = True  # its node stopped answering: no new job goes there
        await super().release(lease)

    def _refresh(self) -> None:
        """Slots for nodes that joined since the last look (at most every REFRESH_S)."""
        if time.monotonic() - self._refreshed < REFRESH_S:
            return
        self._refreshed = time.monotonic()
        for entry in self.models.values():
            if entry.cls is None:
                continue
            known = {s.device for s in entry.slots}
            for device in self._devices_for(entry.cls):
                if device not in known:
                    log.info("model %s: a worker place on the new node %s", entry.name, device)
                    for _ in range(self.settings.max_concurrent):
                        entry.slots.append(Slot(entry.name, device, len(entry.slots),
                                                self._jobs_for(entry.cls, device)))

    def _cluster_gpus(self) -> list[GPU]:
        """Every GPU node's cards as its own nvidia-smi reports them (a small Ray task on each
        node, no CPU held), named with their node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from hub3d.gpu import query_gpus

        nodes = [n for n in self._alive_nodes() if n["Resources"].get("GPU")]
        ask = self.ray.remote(num_cpus=0)(query_gpus)
        refs = [ask.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(fresh=True) for n in nodes]
        found = []
        for node, ref in zip(nodes, refs, strict=True):
            try:
                cards = self.ray.get(ref, timeout=10)
            except Exception:  # a node too busy or gone: health says nothing of it
                continue
            found += [GPU(g.index, f"{g.name} on {node['NodeManagerAddress']}", g.vram_gb,
                          g.vram_free_gb) for g in cards]
        return found

    async def shutdown(self) -> None:
        await super().shutdown()
        with contextlib.suppress(Exception):
            self.ray.shutdown()
