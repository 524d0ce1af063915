"""Overhead of hub3d's full path over a direct call, side by side with a bare FastAPI route.

(a) direct: the inflate function in this process; (b) bare: the same function behind one FastAPI
route; (c) hub3d: POST /generate/sync (HTTP + queue + worker process + job files + response).
Interleaved rounds, one run. Overhead = p50(path) − p50(direct).

    python benchmarks/overhead.py [--requests 200] [--rounds 10] [--size 512]
"""

from __future__ import annotations

import argparse
import base64
import sys
import threading
import time

import requests

from benchmarks.common import free_port, pct, sample_png, save, start, stop, summary_ms, table
from benchmarks.direct import infer


def _post(session: requests.Session, url: str, body: dict) -> float:
    t0 = time.perf_counter()
    r = session.post(url, json=body, timeout=60)
    r.raise_for_status()
    assert r.content[:4] == b"glTF"
    return time.perf_counter() - t0


def health_while_busy(hub_url: str, body: dict, seconds: float = 10.0) -> dict[str, float]:
    """/health latency while the worker is kept busy by a second client."""
    stop_at = time.monotonic() + seconds
    def load() -> None:
        with requests.Session() as s:
            while time.monotonic() < stop_at:
                _post(s, f"{hub_url}/generate/sync", body)
    thread = threading.Thread(target=load)
    thread.start()
    times = []
    with requests.Session() as s:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            s.get(f"{hub_url}/health", timeout=10).raise_for_status()
            times.append(time.perf_counter() - t0)
            time.sleep(0.02)
    thread.join()
    return summary_ms(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()

    png = sample_png(args.size)
    body = {"image": base64.b64encode(png).decode()}
    bare_port, hub_port = free_port(), free_port()
    bare_url, hub_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{hub_port}"
    import tempfile
    data_dir = tempfile.mkdtemp(prefix="hub3d-bench-")
    bare = start([sys.executable, "benchmarks/bare_app.py", str(bare_port)], bare_url,
                 health="/docs")
    hub = start([sys.executable, "-m", "hub3d", "serve", "--port", str(hub_port), "--models",
                 "inflate", "--data-dir", data_dir, "--preload", "--max-queue-size", "1000"],
                hub_url)
    out_size = len(infer(png))
    times: dict[str, list[float]] = {"direct": [], "bare FastAPI": [], "hub3d": []}
    try:
        with requests.Session() as s:
            for _ in range(5):  # warm-up: imports, first worker job, connection
                infer(png)
                _post(s, f"{bare_url}/infer", body)
                _post(s, f"{hub_url}/generate/sync", body)
            per_round = max(1, args.requests // args.rounds)
            for _ in range(args.rounds):
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    infer(png)
                    times["direct"].append(time.perf_counter() - t0)
                for _ in range(per_round):
                    times["bare FastAPI"].append(_post(s, f"{bare_url}/infer", body))
                for _ in range(per_round):
                    times["hub3d"].append(_post(s, f"{hub_url}/generate/sync", body))
        health = health_while_busy(hub_url, body)
    finally:
        stop(bare)
        stop(hub)

    direct_p50 = pct(times["direct"], 50) * 1000
    rows = []
    for name, values in times.items():
        row = {"path": name, **summary_ms(values)}
        row["overhead_p50_ms"] = round(row["p50"] - direct_p50, 2)
        rows.append(row)
    bare_over, hub_over = rows[1]["overhead_p50_ms"], rows[2]["overhead_p50_ms"]
    ratio = round(hub_over / bare_over, 2) if bare_over > 0 else float("inf")
    print(f"inflate at {args.size} px, {len(png) / 1e3:.0f} kB PNG in, {out_size / 1e6:.2f} MB GLB"
          f" out, {args.requests} requests per path, {args.rounds} interleaved rounds\n")
    print(table(rows, ["path", "n", "p50", "p95", "p99", "mean", "overhead_p50_ms"]))
    print(f"\nhub3d overhead / bare FastAPI overhead = {ratio}  (target <= 1.5)")
    print(f"inflate direct p50 = {direct_p50:.1f} ms  (target <= 150)")
    print(f"/health while a worker is busy: p50 {health['p50']} ms, p99 {health['p99']} ms"
          " (target p99 <= 20)")
    path = save("overhead", {"size": args.size, "rows": rows, "ratio": ratio, "health": health,
                             "png_bytes": len(png), "glb_bytes": out_size})
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
