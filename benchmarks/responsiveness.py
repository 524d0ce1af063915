"""Responsiveness: GET /health and GET /job/{id} latency while the workers are saturated.

A feeder keeps the queue `--depth` jobs deep (inflate at 512 px, every worker busy all the time);
a prober polls /health and /job/{id} of a queued job every 20 ms. Target p99 ≤ 20 ms.

    python -m benchmarks.responsiveness [--seconds 60] [--depth 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import threading
import time

import requests

from benchmarks.common import sample_png, save, summary_ms, table
from benchmarks.hub import b64, hub_server


def feed(url: str, body: dict[str, str], depth: int, stop_at: float, ids: list[str]) -> None:
    """Keep `depth` jobs waiting: submit whenever the queue is shorter."""
    with requests.Session() as s:
        while time.monotonic() < stop_at:
            queued = s.get(f"{url}/queue", timeout=30).json()["queued"]
            for _ in range(max(0, depth - queued)):
                r = s.post(f"{url}/generate", json=body, timeout=60)
                if r.status_code == 202:
                    ids.append(r.json()["job_id"])
            time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="inflate workers (CPU devices)")
    args = ap.parse_args()
    body = {"image": b64(sample_png(512))}
    devices = ",".join(f"cpu:{i}" for i in range(args.workers))
    times: dict[str, list[float]] = {"/health": [], "/job/{id}": []}
    with hub_server("--models", "inflate", "--devices", devices, "--preload",
                    "--max-queue-size", "1000") as hub:
        hub.wait_all([hub.submit(body)])  # warm the worker
        ids: list[str] = []
        stop_at = time.monotonic() + args.seconds
        feeder = threading.Thread(target=feed, args=(hub.url, body, args.depth, stop_at, ids))
        feeder.start()
        while not ids:
            time.sleep(0.01)
        with requests.Session() as s:
            while time.monotonic() < stop_at:
                for route, url in (("/health", f"{hub.url}/health"),
                                   ("/job/{id}", f"{hub.url}/job/{ids[-1]}")):
                    t0 = time.perf_counter()
                    s.get(url, timeout=10).raise_for_status()
                    times[route].append(time.perf_counter() - t0)
                time.sleep(0.02)
        feeder.join()
        jobs = hub.wait_all(ids)
        busy = sum(j["processing_time"] or 0 for j in jobs)
    done = sum(j["status"] == "completed" for j in jobs)
    rows = [{"route": route, **summary_ms(values)} for route, values in times.items()]
    print(f"inflate, 512 px, {args.workers} worker(s), queue kept {args.depth} deep for"
          f" {args.seconds:.0f} s; {done}/{len(jobs)} jobs completed,"
          f" worker busy {busy:.0f} s\n")
    print(table(rows, ["route", "n", "p50", "p95", "p99", "mean"]))
    worst = max(r["p99"] for r in rows)
    print(f"\nworst p99 = {worst} ms  (target <= 20)")
    path = save("responsiveness", {"seconds": args.seconds, "depth": args.depth,
                                   "workers": args.workers, "rows": rows, "jobs": len(jobs),
                                   "completed": done})
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
