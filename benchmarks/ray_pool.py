"""The Ray pool against the local pool, on a real 2-node Ray cluster on this machine.

1. Per-job overhead (inflate, a small image): `POST /generate/sync` end to end, one job at a
   time, interleaved between a local server and a Ray-backed one (one actor per node), so
   both see the same machine. Target: Ray's p50 within 15 ms of the local pool's.
2. Throughput with 1 vs 2 nodes: a batch of CPU-bound jobs (tests/backends/cpu_bound.py: SHA-256
   rounds on one core, long enough that Ray's per-call cost is amortised) queued at once on a
   Ray-backed server, first with the head alone, then with a second node. Target: ≥ 1.8 ×.

    python -m benchmarks.ray_pool [--reps 60] [--jobs 12] [--work 2000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import free_port, sample_png, save, start, stop, summary_ms, table
from benchmarks.hub import Hub, b64
from tests.ray_cluster import RayCluster

CPU = "cpu=tests.backends.cpu_bound:CPUBoundBackend"


def serve(args: list[str], env: dict[str, str] | None = None) -> tuple[Hub, Any]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="hub3d-bench-")) / "data"
    url = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "hub3d", "serve", "--port", str(port), "--data-dir",
                  str(data), "--max-queue-size", "200", *args], url, env=env, deadline=120)
    return Hub(url, proc.pid, data, requests.Session()), proc


def overhead(cluster: RayCluster, reps: int) -> list[dict[str, Any]]:
    png = b64(sample_png(128))
    servers = {"local": serve(["--models", "inflate"]),
               "ray": serve(["--models", "inflate", "--ray-address", cluster.address],
                            cluster.client_env)}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for hub, _ in servers.values():  # load the models first: warm jobs only
            for _ in range(3):
                hub.session.post(f"{hub.url}/generate/sync", json={"image": png},
                                 timeout=120).raise_for_status()
        for i in range(reps):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for name in order:
                hub = servers[name][0]
                started = time.perf_counter()
                r = hub.session.post(f"{hub.url}/generate/sync", json={"image": png},
                                     timeout=120)
                times[name].append(time.perf_counter() - started)
                assert r.status_code == 200 and r.content[:4] == b"glTF", r.text[:300]
    finally:
        for _, proc in servers.values():
            stop(proc)
    return [{"pool": name, **summary_ms(values)} for name, values in times.items()]


def throughput(cluster: RayCluster, jobs: int, work: int) -> dict[str, Any]:
    hub, proc = serve(["--models", CPU, "--ray-address", cluster.address, "--preload"],
                      cluster.client_env)
    try:
        body = {"image": b64(sample_png(128)), "work": work}
        nodes = len({w["device"] for m in hub.session.get(f"{hub.url}/models").json()
                     for w in m["workers"]})
        hub.wait_all([hub.submit(body) for _ in range(nodes)])  # every actor loaded
        done = hub.wait_all([hub.submit(body) for _ in range(jobs)])
    finally:
        stop(proc)
    assert all(j["status"] == "completed" for j in done), done
    began = min(j["timestamps"]["started_at"] for j in done)
    ended = max(j["timestamps"]["finished_at"] for j in done)
    return {"nodes": nodes, "jobs": jobs, "wall_s": round(ended - began, 2),
            "jobs_per_s": round(jobs / (ended - began), 3),
            "used": len({j["device"] for j in done})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=60, help="jobs per pool for the overhead")
    ap.add_argument("--jobs", type=int, default=12, help="CPU-bound jobs per throughput run")
    ap.add_argument("--work", type=int, default=2_000_000, help="SHA-256 rounds per job")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hub3d-ray-"))
    path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                       os.environ.get("PYTHONPATH", "")) if p)
    cluster = RayCluster(root, env={"PYTHONPATH": path})
    try:
        cluster.start(num_cpus=1)
        cluster.add_node("n1", num_cpus=1)
        latency = overhead(cluster, args.reps)
        cluster.node("n1").stop()  # one node: the head alone
        one = throughput(cluster, args.jobs, args.work)
        cluster.add_node("n2", num_cpus=1)
        two = throughput(cluster, args.jobs, args.work)
    finally:
        cluster.stop()
    extra = round(latency[1]["p50"] - latency[0]["p50"], 2)
    ratio = round(two["jobs_per_s"] / one["jobs_per_s"], 2)
    print(f"Ray pool vs local pool, {os.cpu_count()} CPUs, a 2-node Ray cluster on this machine"
          "\n\nper job, inflate, /generate/sync end to end (ms):")
    print(table(latency, ["pool", "n", "p50", "p95", "p99", "mean"]))
    print(f"\nRay's extra per job at p50: {extra} ms (target <= 15)")
    print(f"\nthroughput, {args.jobs} CPU-bound jobs ({args.work} SHA-256 rounds each):")
    print(table([one, two], ["nodes", "jobs", "used", "wall_s", "jobs_per_s"]))
    print(f"\n2 nodes / 1 node = {ratio} (target >= 1.8)")
    out = save("ray_pool", {"latency": latency, "extra_p50_ms": extra, "one_node": one,
                            "two_nodes": two, "ratio": ratio, "work": args.work})
    print(f"\nwritten {out.relative_to(out.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
