"""Scaling: 1 vs 2 workers (two CPU "devices") on a CPU-bound backend; throughput ratio.

Each job burns a fixed number of SHA-256 rounds on one core (tests/backends/cpu_bound.py).
All jobs are queued at once; throughput = jobs / (last finish − first start), from the job
timestamps. Target: ≥ 1.8× with 2 workers on 2 cores.

    python -m benchmarks.scaling [--jobs 40] [--work 200000]
"""

from __future__ import annotations

import argparse
import os

from benchmarks.common import sample_png, save, table
from benchmarks.hub import b64, hub_server

BACKEND = "cpu=tests.backends.cpu_bound:CPUBoundBackend"


def run(devices: list[str], jobs: int, work: int, png: str) -> dict[str, object]:
    with hub_server("--models", BACKEND, "--devices", ",".join(devices), "--preload",
                    "--max-queue-size", str(jobs + 10)) as hub:
        body = {"image": png, "work": work}
        hub.wait_all([hub.submit(body) for _ in devices])  # warm: every worker up and loaded
        finished = hub.wait_all([hub.submit(body) for _ in range(jobs)])
    assert all(j["status"] == "completed" for j in finished), finished
    started = min(j["timestamps"]["started_at"] for j in finished)
    ended = max(j["timestamps"]["finished_at"] for j in finished)
    per_job = sorted(j["processing_time"] for j in finished)[len(finished) // 2]
    used = sorted({j["device"] for j in finished})
    return {"workers": len(devices), "devices": ",".join(used), "jobs": jobs,
            "wall_s": round(ended - started, 3), "jobs_per_s": round(jobs / (ended - started), 3),
            "job_p50_s": round(per_job, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--work", type=int, default=200_000, help="SHA-256 rounds per job")
    args = ap.parse_args()
    png = b64(sample_png(256))
    rows = [run(["cpu:0"], args.jobs, args.work, png),
            run(["cpu:0", "cpu:1"], args.jobs, args.work, png)]
    ratio = round(float(rows[1]["jobs_per_s"]) / float(rows[0]["jobs_per_s"]), 2)  # type: ignore[arg-type]
    print(f"CPU-bound backend, {args.work} SHA-256 rounds a job, {args.jobs} jobs,"
          f" {os.cpu_count()} CPUs\n")
    print(table(rows, ["workers", "devices", "jobs", "wall_s", "jobs_per_s", "job_p50_s"]))
    print(f"\nthroughput 2 workers / 1 worker = {ratio}  (target >= 1.8 on 2 free cores)")
    path = save("scaling", {"work": args.work, "rows": rows, "ratio": ratio})
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
