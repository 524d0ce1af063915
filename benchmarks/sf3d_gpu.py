"""SF3D at the GPU's speed, in one run: upstream's run_image called directly vs hub3d, single
jobs and batches, with the card memory each worker configuration holds.

The real SF3D code (the upstream archive) with a random checkpoint of the full-size
architecture (the tet grid about the size of upstream's real one) and the tests' sphere
density, so every job makes a real textured mesh. In order, each in fresh processes:
  1. upstream direct: load, the first job of the process, --reps warm jobs;
  2. hub3d, 1 worker x 1 job: serve → ready (load + warm-up), the first /generate/sync, --reps
     warm ones, then a batch of --batch jobs submitted at once;
  3. a batch per configuration: --workers N (hub3d's --max-concurrent, 1 job each) and
     --jobs N (--jobs-per-worker on one worker); every worker thread is primed first.
Every GLB is fetched and its vertices counted; a failed job voids its configuration. Card
memory is nvidia-smi's per-process figure for the workers (their RSS with --cpu). Then the
issue's targets are checked, met or not, with the figures.

    python -m benchmarks.sf3d_gpu --out sf3d_gpu.json            # GPU: builds the extensions
    python -m benchmarks.sf3d_gpu --env ENV --out sf3d_gpu.json   # GPU, a prepared env
    python -m benchmarks.sf3d_gpu --env ENV --cpu --reduced --reps 1 --batch 4   # rehearsal
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, RESULTS
from benchmarks.sf3d_direct import gpu_query
from benchmarks.sf3d_gpu_hub import (
    Config,
    MemorySampler,
    RunBroken,
    batch,
    served,
    stage_medians,
    sync_job,
    wait_workers,
)
from benchmarks.sf3d_gpu_prep import Prepared, prepare
from benchmarks.sf3d_gpu_report import checks, render
from benchmarks.sf3d_upstream import _disc

SINGLE = Config(1, 1)


def _ints(text: str) -> list[int]:
    return sorted({int(x) for x in text.split(",") if x.strip()})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", help="a prepared SF3D env (DIR/bin/python with torch, SF3D's pins "
                                 "and both extensions built); without it they are built")
    p.add_argument("--python", help="without --env: the Python holding torch and SF3D's pins "
                                    "(default: this one); the extensions are built beside it")
    p.add_argument("--arch", help="TORCH_CUDA_ARCH_LIST for the build (default: the card's)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (the rehearsal)")
    p.add_argument("--reduced", action="store_true", help="the tests' small config")
    p.add_argument("--reps", type=int, default=5, help="warm single jobs per path")
    p.add_argument("--batch", type=int, default=16, help="jobs submitted at once")
    p.add_argument("--texture", type=int, default=1024)
    p.add_argument("--workers", default="1,2,4", help="--max-concurrent values (1 job each)")
    p.add_argument("--jobs", default="1,2,4,8", help="--jobs-per-worker values (one worker)")
    p.add_argument("--warmup", choices=("auto", "on", "off"),
                   help="hub3d's --warmup (default auto; on with --cpu, as on a GPU)")
    p.add_argument("--budget-s", type=float, default=0,
                   help="skip the configurations that would not end within this (0: no limit)")
    p.add_argument("--work", help="keep the source, env and checkpoint here (reused)")
    p.add_argument("--out", help="the JSON (default benchmarks/results/sf3d_gpu[_cpu].json); "
                                 "the tables beside it as .txt")
    args = p.parse_args(argv)
    if args.reps < 1 or args.batch < 1:
        p.error("--reps and --batch must be at least 1")
    args.warmup = args.warmup or ("on" if args.cpu else "auto")
    return args


def configs(args: argparse.Namespace) -> list[Config]:
    """The batch configurations after the single one, the issue's default (4 jobs) first."""
    wanted = ([Config(1, j) for j in _ints(args.jobs) if j != 1] +
              [Config(w, 1) for w in _ints(args.workers) if w != 1])
    return sorted(wanted, key=lambda c: (c != Config(1, 4), c.max_concurrent > 2,
                                         c.max_concurrent, c.jobs_per_worker))


def machine(cpu: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                            "device": "cpu" if cpu else "cuda"}
    if not cpu:
        info["gpu"] = gpu_query("name,driver_version,memory.total")
    return info


def run_direct(prep: Prepared, args: argparse.Namespace, image: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if args.cpu:
        env["SF3D_USE_CPU"] = "1"
    out = subprocess.run([str(prep.python), str(REPO / "benchmarks" / "sf3d_direct.py"),
                          "--src", str(prep.src), "--checkpoint", str(prep.checkpoint),
                          "--image", str(image), "--texture", str(args.texture),
                          "--reps", str(args.reps), "--device", "cpu" if args.cpu else "cuda"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RunBroken(f"the direct run failed ({out.returncode}): {out.stderr[-3000:]}")
    got: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    got["warm_p50_s"] = statistics.median(j["total_s"] for j in got["warm"])
    return got


def _serve(prep: Prepared, args: argparse.Namespace, config: Config, work: Path) -> Any:
    data = Path(tempfile.mkdtemp(prefix="serve-", dir=work))
    return served(prep.python, prep.src, prep.checkpoint, config, cpu=args.cpu,
                  warmup=args.warmup, queue=args.batch + 64, data=data)


def run_single(prep: Prepared, args: argparse.Namespace, png: bytes,
               work: Path) -> dict[str, Any]:
    """1 worker x 1 job: ready, the first job after the load, warm jobs, then a batch."""
    with _serve(prep, args, SINGLE, work) as (hub, start):
        first = sync_job(hub, png, args.texture)
        warm = [sync_job(hub, png, args.texture) for _ in range(args.reps)]
        with MemorySampler([w["pid"] for w in start["workers"]], cuda=not args.cpu) as mem:
            got = batch(hub, png, args.texture, args.batch)
    return {"config": SINGLE.name, **start, "first": first, "warm": warm,
            "warm_p50_s": statistics.median(j["e2e_s"] for j in warm),
            "warm_stages": stage_medians(warm), "batch": got, "memory": mem.result()}


def run_config(prep: Prepared, args: argparse.Namespace, png: bytes, work: Path,
               config: Config) -> dict[str, Any]:
    """A batch on one configuration, after one job per worker thread has run (that also
    starts every worker: --preload starts the first only)."""
    with _serve(prep, args, config, work) as (hub, start):
        started = time.perf_counter()
        prime = config.max_concurrent * config.jobs_per_worker
        batch(hub, png, args.texture, prime)
        workers = wait_workers(hub, config.max_concurrent, timeout=600)
        primed_s = time.perf_counter() - started
        with MemorySampler([w["pid"] for w in workers], cuda=not args.cpu) as mem:
            got = batch(hub, png, args.texture, args.batch)
    return {"config": config.name, "max_concurrent": config.max_concurrent,
            "jobs_per_worker": config.jobs_per_worker, **start, "workers": workers,
            "priming_jobs": prime, "priming_s": primed_s, "batch": got, "memory": mem.result()}


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # a time limit's SIGTERM unwinds like Ctrl-C: each server (its own session, so out of reach
    # of a signal to this process group) is stopped and the report saved on the way out
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    out = Path(args.out) if args.out else RESULTS / f"sf3d_gpu{'_cpu' if args.cpu else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    deadline = began + args.budget_s if args.budget_s else None
    report: dict[str, Any] = {"args": vars(args), "machine": machine(args.cpu), "phases": {},
                              "throughput": [], "skipped": [], "errors": []}

    def save() -> None:
        report["checks"] = checks(report)
        report["tables"] = render(report)
        out.write_text(json.dumps(report, indent=2, default=str))
        out.with_suffix(".txt").write_text(report["tables"] + "\n")

    def phase(name: str, fn: Any, *fargs: Any) -> Any:
        started = time.perf_counter()
        print(f"... {name}", flush=True)
        try:
            return fn(*fargs)
        except (RunBroken, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            report["errors"].append(f"{name}: {exc}")
            print(f"!!! {name}: {exc}", flush=True)
            return None
        except KeyboardInterrupt:
            report["errors"].append(f"{name}: interrupted (a time limit, or Ctrl-C)")
            raise
        finally:
            report["phases"][name] = round(time.perf_counter() - started, 1)
            save()

    with tempfile.TemporaryDirectory(prefix="sf3d-gpu-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            prep = prepare(args, work)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            report["errors"].append(f"preparing the run: {exc}")
            save()
            print(report["tables"], flush=True)
            return 1
        report["phases"].update({k: round(v, 1) for k, v in prep.phases.items()})
        report["extensions"] = prep.extensions
        image = work / "disc.png"
        _disc().save(image)
        png = image.read_bytes()
        report["direct"] = phase("upstream direct", run_direct, prep, args, image)
        report["hub3d"] = phase("hub3d 1 worker x 1 job", run_single, prep, args, png, work)
        for config in configs(args):
            spent = [v for k, v in report["phases"].items() if k.startswith("hub3d ")]
            guess = max(spent or [0]) * (1.5 if config.max_concurrent > 2 else 1.2)
            if deadline and time.perf_counter() + guess > deadline:
                report["skipped"].append(f"{config.name}: the time budget (--budget-s "
                                         f"{args.budget_s:.0f}) would run out")
                continue
            got = phase(f"hub3d {config.name}", run_config, prep, args, png, work, config)
            if got:
                report["throughput"].append(got)
        report["phases"]["total"] = round(time.perf_counter() - began, 1)
        save()
    print(report["tables"])
    print(f"\nJSON: {out}\ntables: {out.with_suffix('.txt')}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
