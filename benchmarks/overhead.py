"""Overhead of hub3d's full path over a direct call, side by side with LitServe and bare FastAPI.

(a) direct: the inflate function in this process; (b) bare: the same function behind one FastAPI
route; (c) LitServe: the same function as a LitAPI, one CPU worker process; (d) hub3d:
POST /generate/sync (HTTP + queue + worker process + job files + response).
Interleaved rounds, one run. Overhead = p50(path) − p50(direct).

    python -m benchmarks.overhead [--requests 200] [--rounds 10] [--size 512]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import requests

from benchmarks.common import free_port, pct, sample_png, save, start, stop, summary_ms, table
from benchmarks.direct import infer


def _post(session: requests.Session, url: str, body: dict, ids: list[str] | None = None,
          compute: list[float] | None = None) -> float:
    """One request; its end-to-end seconds. Records the job id (hub3d) or the function's own
    time from X-Compute-Ms (the peers)."""
    t0 = time.perf_counter()
    r = session.post(url, json=body, timeout=60)
    r.raise_for_status()
    assert r.content[:4] == b"glTF"
    if ids is not None:
        ids.append(r.headers["x-job-id"])
    if compute is not None:
        compute.append(float(r.headers["x-compute-ms"]) / 1000)
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


def hub_compute(hub_url: str, job_ids: list[str]) -> list[float]:
    """Each job's own run in the worker (timings.total: decode, inflate, GLB, and its write)."""
    with requests.Session() as s:
        return [s.get(f"{hub_url}/job/{jid}", timeout=10).json()["timings"]["total"]
                for jid in job_ids]


def stage_breakdown(hub_url: str, job_ids: list[str], e2e: list[float]) -> dict:
    """Where hub3d's time goes (means, ms), from each job's metadata.json timings: intake (the
    request read, checked and written to input.png, up to the queue), the queue hop, the worker's
    own stages; the rest is HTTP in and out, worker IPC, the store and the file response."""
    stages: dict[str, list[float]] = {}
    with requests.Session() as s:
        for jid in job_ids:
            timings = s.get(f"{hub_url}/job/{jid}/metadata", timeout=10).json()["timings"]
            for name, value in timings.items():
                stages.setdefault(name, []).append(value * 1000)
    out = {name: round(statistics.fmean(v), 2) for name, v in stages.items()}
    out["client end-to-end"] = round(statistics.fmean(e2e) * 1000, 2)
    accounted = sum(out.get(k, 0.0) for k in ("intake", "queue_wait", "total"))
    out["HTTP, IPC, store, response (rest)"] = round(out["client end-to-end"] - accounted, 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()

    png = sample_png(args.size)
    body = {"image": base64.b64encode(png).decode()}
    bare_port, ls_port, hub_port = free_port(), free_port(), free_port()
    urls = {"bare FastAPI": f"http://127.0.0.1:{bare_port}/infer",
            "LitServe": f"http://127.0.0.1:{ls_port}/predict",
            "hub3d": f"http://127.0.0.1:{hub_port}/generate/sync"}
    hub_url = f"http://127.0.0.1:{hub_port}"
    data_dir = tempfile.mkdtemp(prefix="hub3d-bench-")
    servers = [
        start([sys.executable, "benchmarks/bare_app.py", str(bare_port)],
              f"http://127.0.0.1:{bare_port}", health="/docs"),
        start([sys.executable, "benchmarks/litserve_app.py", str(ls_port)],
              f"http://127.0.0.1:{ls_port}"),
        start([sys.executable, "-m", "hub3d", "serve", "--port", str(hub_port), "--models",
               "inflate", "--data-dir", data_dir, "--preload", "--max-queue-size", "1000"],
              hub_url),
    ]
    out_size = len(infer(png))
    times: dict[str, list[float]] = {"direct": [], **{name: [] for name in urls}}
    compute: dict[str, list[float]] = {name: [] for name in urls if name != "hub3d"}
    hub_ids: list[str] = []
    try:
        with requests.Session() as s:
            for _ in range(5):  # warm-up: imports, first worker job, connection
                infer(png)
                for url in urls.values():
                    _post(s, url, body)
            per_round = max(1, args.requests // args.rounds)
            for _ in range(args.rounds):
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    infer(png)
                    times["direct"].append(time.perf_counter() - t0)
                for name, url in urls.items():
                    ids = hub_ids if name == "hub3d" else None
                    times[name].extend(_post(s, url, body, ids, compute.get(name))
                                       for _ in range(per_round))
        compute["hub3d"] = hub_compute(hub_url, hub_ids)
        stages = stage_breakdown(hub_url, hub_ids, times["hub3d"])
        health = health_while_busy(hub_url, body)
    finally:
        for proc in servers:
            stop(proc)
    report(args, png, out_size, times, compute, stages, health)
    return 0


def report(args: argparse.Namespace, png: bytes, out_size: int, times: dict[str, list[float]],
           compute: dict[str, list[float]], stages: dict[str, float],
           health: dict[str, float]) -> None:
    direct_p50 = pct(times["direct"], 50) * 1000
    rows: dict[str, dict[str, Any]] = {}
    for name, values in times.items():
        row = {"path": name, **summary_ms(values)}
        row["overhead_p50_ms"] = round(row["p50"] - direct_p50, 2)
        row["overhead_p95_ms"] = round(row["p95"] - pct(times["direct"], 95) * 1000, 2)
        if name in compute:  # per request: end-to-end minus the function's own time in it
            own = summary_ms([e - c for e, c in zip(values, compute[name], strict=True)])
            row["per_request_p50_ms"], row["per_request_p95_ms"] = own["p50"], own["p95"]
        rows[name] = row

    def ratio(peer: str, key: str) -> float:
        over = rows[peer][key]
        return round(rows["hub3d"][key] / over, 2) if over > 0 else float("inf")

    ratios = {f"hub3d/{peer} ({key})": ratio(peer, key) for peer in ("LitServe", "bare FastAPI")
              for key in ("overhead_p50_ms", "per_request_p50_ms")}
    print(f"inflate at {args.size} px, {len(png) / 1e3:.0f} kB PNG in, {out_size / 1e6:.2f} MB GLB"
          f" out, {args.requests} requests per path, {args.rounds} interleaved rounds\n")
    print(table(list(rows.values()), ["path", "n", "p50", "p95", "p99", "mean",
                                      "overhead_p50_ms", "overhead_p95_ms",
                                      "per_request_p50_ms", "per_request_p95_ms"]))
    print("\noverhead_*: p(path) - p(direct). per_request_*: each request's end-to-end minus the"
          " function's own time in that request (X-Compute-Ms; hub3d: the job's timings.total)")
    for name, value in ratios.items():
        target = 0.6 if "LitServe" in name else 1.5
        print(f"{name} = {value}  (target <= {target})")
    print(f"inflate direct p50 = {direct_p50:.1f} ms")
    print("\nhub3d stages (mean ms; worker stages from metadata.json):")
    print(table([{"stage": k, "ms": v} for k, v in stages.items()], ["stage", "ms"]))
    print(f"\n/health while a worker is busy: p50 {health['p50']} ms, p99 {health['p99']} ms"
          " (target p99 <= 20)")
    path = save("overhead", {"size": args.size, "rows": list(rows.values()), "ratios": ratios,
                             "stages_ms": stages, "health": health, "png_bytes": len(png),
                             "glb_bytes": out_size})
    print(f"\nwritten {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    raise SystemExit(main())
