"""Memory and disk: N jobs through the server; RSS of the server and of each worker every
`--every` jobs; the data dir's size with a short result TTL.

Targets: RSS growth ≤ 10 MB (server and each worker, first sample to last, after warm-up);
the data dir bounded by the TTL (it stops growing once results expire as fast as they arrive).

    python -m benchmarks.memory [--jobs 1000] [--every 100] [--ttl-s 20] [--model inflate]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import psutil

from benchmarks.common import sample_png, save, table
from benchmarks.hub import Hub, b64, hub_server

MB = 1024 * 1024


def dir_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # expired and removed while we walked
                pass
    return total


def sample(hub: Hub, done: int) -> dict[str, object]:
    row: dict[str, object] = {"jobs": done,
                              "server_mb": round(psutil.Process(hub.pid).memory_info().rss / MB, 1)}
    for key, pid in sorted(hub.worker_pids().items()):
        try:
            row[f"worker {key} mb"] = round(psutil.Process(pid).memory_info().rss / MB, 1)
        except psutil.NoSuchProcess:
            row[f"worker {key} mb"] = None
    row["data_dir_mb"] = round(dir_size(hub.data_dir) / MB, 2)
    row["job_dirs"] = sum(1 for _ in (hub.data_dir / "jobs").iterdir())
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--ttl-s", type=float, default=20.0, help="result TTL in seconds")
    ap.add_argument("--model", default="inflate")
    ap.add_argument("--batch", type=int, default=8, help="jobs in flight at a time")
    args = ap.parse_args()
    body = {"image": b64(sample_png(512))}
    rows, failed = [], 0
    with hub_server("--models", args.model, "--preload", "--max-queue-size", "1000",
                    "--result-ttl-hours", f"{args.ttl_s / 3600:.8f}") as hub:
        hub.wait_all([hub.submit(body) for _ in range(5)])  # warm-up: first allocations
        rows.append(sample(hub, 0))
        done = 0
        while done < args.jobs:
            n = min(args.batch, args.jobs - done, args.every - done % args.every)
            jobs = hub.wait_all([hub.submit(body) for _ in range(n)])
            failed += sum(j["status"] != "completed" for j in jobs)
            done += n
            if done % args.every == 0 or done == args.jobs:
                rows.append(sample(hub, done))
                print(rows[-1], flush=True)
    columns = list(rows[0])
    growth = {c: round(float(rows[-1][c]) - float(rows[0][c]), 1)  # type: ignore[arg-type]
              for c in columns if c.endswith("mb") and rows[-1].get(c) is not None}
    print(f"\n{args.jobs} {args.model} jobs ({failed} not completed), TTL {args.ttl_s:.0f} s\n")
    print(table(rows, columns))
    print(f"\ngrowth first→last sample (MB): {growth}  (target RSS <= 10)")
    path = save("memory", {"jobs": args.jobs, "ttl_s": args.ttl_s, "model": args.model,
                           "rows": rows, "growth_mb": growth, "failed": failed})
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
