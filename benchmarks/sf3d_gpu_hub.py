"""The hub3d side of the SF3D speed run: `hub3d serve` with one worker configuration, its
single jobs (`/generate/sync`), a batch submitted at once, and the memory its workers hold.

Every result is checked: a job that does not complete, or a GLB without vertices, raises
RunBroken, so a broken configuration never reports fast numbers.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from benchmarks.common import free_port, start, stop
from benchmarks.hub import Hub, b64
from benchmarks.sf3d_direct import glb_vertices, gpu_query, nvidia_apps_mib

__all__ = ["Config", "MemorySampler", "RunBroken", "batch", "served", "stage_medians",
           "sync_job",
           "wait_workers"]

SPHERE = "sf3d=tests.upstream.sphere_sf3d:SphereSF3D"
GB = 1024**3


class RunBroken(RuntimeError):
    """A job failed or gave an empty/unreadable GLB: the configuration's figures are void."""


@dataclass(frozen=True)
class Config:
    max_concurrent: int  # worker processes (model copies) on the device
    jobs_per_worker: int  # jobs each runs at once in threads

    @property
    def name(self) -> str:
        return f"{self.max_concurrent} worker(s) x {self.jobs_per_worker} job(s)"


@contextmanager
def served(python: Path, src: Path, ckpt: Path, config: Config, *, cpu: bool, warmup: str,
           queue: int, data: Path) -> Iterator[tuple[Hub, dict[str, Any]]]:
    """A preloaded `hub3d serve` of the sphere SF3D; yields it once its first worker is ready,
    with what start-up cost (ready_s: launch → ready)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"HUB3D_PYTHON_SF3D": str(python), "HUB3D_SF3D_SRC": str(src),
           "HUB3D_SF3D_CHECKPOINT": str(ckpt), "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(data / "hf"), "U2NET_HOME": str(data / "u2net")}
    if cpu:
        env["SF3D_USE_CPU"] = "1"  # upstream's own switch: the bake too stays on the CPU
    args = ["--models", SPHERE, "--preload", "--warmup", warmup,
            "--max-concurrent", str(config.max_concurrent),
            "--jobs-per-worker", str(config.jobs_per_worker), "--max-queue-size", str(queue),
            *(["--devices", "cpu"] if cpu else [])]
    started = time.perf_counter()
    try:
        proc = start([sys.executable, "-m", "hub3d", "serve", "--port", str(port),
                      "--data-dir", str(data / "data"), *args], url, env, deadline=120,
                     log=data / "serve.log")
    except (RuntimeError, TimeoutError) as exc:
        raise RunBroken(str(exc)) from None
    try:
        with requests.Session() as session:
            hub = Hub(url, proc.pid, data / "data", session)
            workers = wait_workers(hub, 1)
            yield hub, {"ready_s": time.perf_counter() - started, "workers": workers}
    finally:
        # the workers (own sessions, ended by the server's shutdown or their lifeline) must be
        # gone before the next configuration loads: its memory figures would count them
        workers = [p for w in _pids(url) if (p := _process(w))]
        stop(proc)
        psutil.wait_procs(workers, timeout=60)


def wait_workers(hub: Hub, count: int, timeout: float = 1800) -> list[dict[str, Any]]:
    """The model's workers once `count` of them are loaded (their pid, load_s, warmup_s)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        (model,) = [m for m in hub.session.get(f"{hub.url}/models", timeout=30).json()
                    if m["name"] == "sf3d"]
        ready = [w for w in model["workers"] if w["state"] in ("ready", "busy")]
        if len(ready) >= count:
            return [{k: w.get(k) for k in ("pid", "load_s", "warmup_s", "capacity")}
                    for w in ready]
        if model["state"] == "failed" or model.get("error"):
            raise RunBroken(f"sf3d failed to load: {model.get('error')}")
        time.sleep(0.2)
    raise RunBroken(f"fewer than {count} sf3d workers ready after {timeout} s")


def _pids(url: str) -> list[int]:
    try:
        models = requests.get(f"{url}/models", timeout=10).json()
    except (requests.RequestException, ValueError):
        return []
    return [int(w["pid"]) for m in models for w in m["workers"] if w.get("pid")]


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _check_result(hub: Hub, job: dict[str, Any]) -> dict[str, Any]:
    """The job's metadata, after its GLB was fetched and its vertices counted."""
    if job["status"] != "completed":
        raise RunBroken(f"job {job['job_id']} {job['status']}: {job.get('error')}")
    glb = hub.session.get(f"{hub.url}/job/{job['job_id']}/download", timeout=120).content
    return _checked(hub, job["job_id"], glb)


def _checked(hub: Hub, job_id: str, glb: bytes) -> dict[str, Any]:
    try:
        vertices = glb_vertices(glb)
    except ValueError as exc:
        raise RunBroken(f"job {job_id}: {exc}") from None
    meta = dict(hub.session.get(f"{hub.url}/job/{job_id}/metadata", timeout=30).json())
    if vertices == 0 or vertices != meta.get("vertices"):
        raise RunBroken(f"job {job_id}: GLB has {vertices} vertices, metadata says "
                        f"{meta.get('vertices')}")
    meta["glb_vertices"], meta["glb_bytes"] = vertices, len(glb)
    return meta


def sync_job(hub: Hub, png: bytes, texture: int) -> dict[str, Any]:
    """One `/generate/sync` timed end to end (upload → GLB received), and its metadata."""
    started = time.perf_counter()
    r = hub.session.post(f"{hub.url}/generate/sync", timeout=1800,
                         files={"image": ("in.png", png, "image/png")},
                         data={"model": "sf3d", "texture_resolution": str(texture)})
    e2e = time.perf_counter() - started
    if r.status_code != 200:
        raise RunBroken(f"/generate/sync answered {r.status_code}: {r.text[:300]}")
    meta = _checked(hub, r.headers["X-Job-Id"], r.content)
    return {"e2e_s": e2e, **meta}


def batch(hub: Hub, png: bytes, texture: int, n: int) -> dict[str, Any]:
    """n jobs submitted back to back; throughput over first submission → last completion
    (the server's own timestamps), every GLB fetched and checked after."""
    body = {"image": b64(png), "model": "sf3d", "texture_resolution": texture}
    ids = [hub.submit(body) for _ in range(n)]
    jobs = hub.wait_all(ids, timeout=3600, poll_s=0.05)
    metas = [_check_result(hub, job) for job in jobs]
    first = min(j["timestamps"]["created_at"] for j in jobs)
    last = max(j["timestamps"]["finished_at"] for j in jobs)
    return {"jobs": n, "completed": len(metas), "wall_s": last - first,
            "jobs_per_s": n / (last - first), "vertices": [m["glb_vertices"] for m in metas],
            "stages": stage_medians(metas), "torch_cuda": _torch_cuda(metas)}


def stage_medians(metas: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each stage (hub3d's `timings`) and each step (SF3D's
    `model_timings`) over the jobs given."""
    keys: dict[str, list[float]] = {}
    for meta in metas:
        for k, v in meta.get("timings", {}).items():
            keys.setdefault(k, []).append(v)
        for k, v in meta.get("model_timings", {}).items():
            keys.setdefault(f"sf3d.{k}", []).append(v)
    return {k: round(statistics.median(v), 4) for k, v in keys.items()}


def _torch_cuda(metas: list[dict[str, Any]]) -> dict[str, float] | None:
    """torch's own peak figures, each worker's highest, summed over the workers (the sphere
    backend records them per job with its pid)."""
    per_pid: dict[int, float] = {}
    for meta in metas:
        seen = meta.get("test_torch_cuda")
        if seen:
            per_pid[seen["pid"]] = max(per_pid.get(seen["pid"], 0.0), seen["peak_reserved_gib"])
    if not per_pid:
        return None
    return {"peak_reserved_gib": round(sum(per_pid.values()), 2), "workers": len(per_pid)}


class MemorySampler:
    """Peak memory of the given worker processes while it runs, every `every` seconds: on a GPU
    the card memory nvidia-smi lists for them (--query-compute-apps used_memory), on the CPU
    their resident memory. Inside a container nvidia-smi may list other pids than ours: then
    every compute process is counted (on a lent card, only ours run), and `source` says so."""

    def __init__(self, pids: list[int], cuda: bool, every: float = 0.5) -> None:
        self.pids, self.cuda, self.every = pids, cuda, every
        self.peak_gb, self.samples, self.source = 0.0, 0, ""
        self.device_peak_gb: float | None = None
        self.per_worker: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> dict[int, float]:
        if not self.cuda:
            self.source = "worker RSS (psutil)"
            found = {}
            for pid in self.pids:
                try:
                    found[pid] = psutil.Process(pid).memory_info().rss / GB
                except psutil.Error:
                    pass
            return found
        apps = {pid: mib / 1024 for pid, mib in nvidia_apps_mib().items()}
        mine = {pid: gb for pid, gb in apps.items() if pid in self.pids}
        if mine:
            self.source = "nvidia-smi compute-apps used_memory, worker pids"
            return mine
        self.source = "nvidia-smi compute-apps used_memory, every process (pids not ours)"
        return apps

    def _loop(self) -> None:
        while True:
            found = self._sample()
            self.samples += 1
            self.peak_gb = max(self.peak_gb, sum(found.values()))
            used = device_used_gb() if self.cuda else None
            if used is not None:
                self.device_peak_gb = max(self.device_peak_gb or 0.0, used)
            for pid, gb in found.items():
                self.per_worker[pid] = max(self.per_worker.get(pid, 0.0), gb)
            if self._stop.wait(self.every):
                return

    def result(self) -> dict[str, Any]:
        return {"peak_gb": round(self.peak_gb, 2), "source": self.source,
                "per_worker_peak_gb": [round(v, 2) for v in self.per_worker.values()],
                "samples": self.samples, "card_used_peak_gb": self.device_peak_gb}


def device_used_gb() -> float | None:
    """The card's whole used memory (nvidia-smi --query-gpu=memory.used), None without one."""
    used = gpu_query("memory.used", nounits=True)
    return round(float(used) / 1024, 2) if used else None
