"""The facts a Ray pool is designed on, measured on a real 2-node Ray cluster on this machine.

Per job: a Ray actor call (100 kB in, 300 kB out; plain method and the streaming `ModelActor.run`)
vs a local subprocess pipe and vs the local process worker doing the same job; by-value vs
`ray.put` inputs; `ray.init` connection; cluster start/stop and idle memory; an inflate actor's
memory vs the process worker's; what a caller sees on cancel and on a lost node.

    python -m benchmarks.ray_facts --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import REPO, sample_png, save, summary_ms, table
from hub3d.fsutil import atomic_write_bytes
from hub3d.workers.process import WorkerProcess
from hub3d.workers.protocol import Done, Run
from tests.ray_cluster import RayCluster

ECHO = "echo=tests.backends.echo:EchoBackend"
SLOW = "slow=tests.backends.testing:SlowBackend"
IN_BYTES, OUT_BYTES = 100_000, 300_000
# A child that answers each length-prefixed frame with OUT_BYTES: the floor of a pipe round trip.
PIPE_CHILD = f"""
import sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while head := inp.read(8):
    inp.read(int.from_bytes(head, "big"))
    out.write(int.to_bytes({OUT_BYTES}, 8, "big") + bytes({OUT_BYTES})); out.flush()
"""


class Echo:
    """A bare actor: bytes in, bytes out."""

    def echo(self, data: bytes, n: int) -> bytes:
        return bytes(n)


def note(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


async def timed(fn: Callable[[], Awaitable[Any]], calls: int, warmup: int = 20) -> dict[str, float]:
    for _ in range(warmup):
        await fn()
    spent = []
    for _ in range(calls):
        t = time.perf_counter()
        await fn()
        spent.append(time.perf_counter() - t)
    return summary_ms(spent)


async def pipe_round_trips(calls: int) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PIPE_CHILD,
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    frame = int.to_bytes(IN_BYTES, 8, "big") + os.urandom(IN_BYTES)

    async def one() -> None:
        assert proc.stdin and proc.stdout
        proc.stdin.write(frame)
        await proc.stdin.drain()
        size = int.from_bytes(await proc.stdout.readexactly(8), "big")
        await proc.stdout.readexactly(size)

    try:
        return await timed(one, calls)
    finally:
        proc.stdin.close()
        await proc.wait()


async def local_worker_jobs(calls: int, work: Path) -> dict[str, float]:
    """The local pool's path: input.png in the job folder, Run over the pipe, Done, the result
    file left in place."""
    worker = WorkerProcess(model_spec=ECHO, device="cpu", python=None, log_path=work / "w.log")
    await worker.start()
    image, count = os.urandom(IN_BYTES), 0

    async def one() -> None:
        nonlocal count
        count += 1
        job_dir = work / f"job{count}"
        job_dir.mkdir()
        (job_dir / "input.png").write_bytes(image)  # done at submission, outside the pool
        t = time.perf_counter()
        msg = await worker.run(Run(f"job{count}", str(job_dir), {"result_bytes": OUT_BYTES}),
                               lambda stage, message: None)
        assert isinstance(msg, Done), msg
        one.spent.append(time.perf_counter() - t)  # type: ignore[attr-defined]

    one.spent = []  # type: ignore[attr-defined]
    try:
        await timed(one, calls)
        return summary_ms(one.spent[-calls:])  # type: ignore[attr-defined]
    finally:
        await worker.stop()


async def ray_jobs(actor: Any, calls: int, work: Path) -> dict[str, float]:
    """The Ray pool's path: read input.png, stream the job, write the result atomically."""
    from hub3d.workers.ray_actor import Finished

    (work / "input.png").write_bytes(os.urandom(IN_BYTES))
    result = work / "result.bin"

    async def one() -> None:
        image = (work / "input.png").read_bytes()
        async for ref in actor.run.remote("job", {"result_bytes": OUT_BYTES}, image):
            item = await ref
            if isinstance(item, Finished):
                atomic_write_bytes(result, item.data)
        assert isinstance(item, Finished), item

    return await timed(one, calls)


def ray_connect_s(address: str, repeat: int = 3) -> list[dict[str, float]]:
    """`import ray`, then `ray.init(address)`, each in a fresh interpreter."""
    code = f"""
import time
t0 = time.perf_counter()
import ray
t1 = time.perf_counter()
ray.init(address={address!r}, log_to_driver=False, logging_level="ERROR")
print(t1 - t0, time.perf_counter() - t1)
"""
    out = []
    for _ in range(repeat):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        import_s, init_s = map(float, run.stdout.split())
        out.append({"import_s": round(import_s, 2), "init_s": round(init_s, 2)})
    return out


def process_memory_mb(pid: int) -> dict[str, float]:
    full = psutil.Process(pid).memory_full_info()
    return {k: round(getattr(full, k) / 2**20, 1) for k in ("rss", "pss", "uss")}


async def inflate_memory(actor: Any, work: Path, jobs: int) -> dict[str, Any]:
    png = sample_png(512)
    where = await actor.where.remote()
    for i in range(jobs):
        async for ref in actor.run.remote(f"m{i}", {}, png):
            await ref
    ray_mb = process_memory_mb(where["pid"])
    worker = WorkerProcess(model_spec="inflate", device="cpu", python=None,
                           log_path=work / "inflate.log")
    await worker.start()
    for i in range(jobs):
        job_dir = work / f"inflate{i}"
        job_dir.mkdir()
        (job_dir / "input.png").write_bytes(png)
        assert isinstance(await worker.run(Run(f"m{i}", str(job_dir), {}), lambda s, m: None),
                          Done)
    assert worker.pid is not None
    local_mb = process_memory_mb(worker.pid)
    await worker.stop()
    return {"ray_actor": ray_mb, "process_worker": local_mb}


async def cancel_figures(actor: Any) -> dict[str, Any]:
    """Two jobs on one actor; cancel one mid-inference: what each caller sees, and when."""
    import ray

    png, t0, seen = sample_png(64), time.perf_counter(), {}

    async def follow(name: str, gen: Any) -> None:
        try:
            async for ref in gen:
                item = await ref
            seen[name] = (round(time.perf_counter() - t0, 3), type(item).__name__)
        except Exception as exc:
            seen[name] = (round(time.perf_counter() - t0, 3), type(exc).__name__)

    kept = actor.run.remote("kept", {"sleep_s": 3}, png)
    dropped = actor.run.remote("dropped", {"sleep_s": 3}, png)
    tasks = [asyncio.create_task(follow("kept", kept)), asyncio.create_task(follow("dropped",
                                                                                    dropped))]
    await asyncio.sleep(1)
    canceled_at = round(time.perf_counter() - t0, 3)
    ray.cancel(dropped)
    await asyncio.gather(*tasks)
    return {"canceled_at_s": canceled_at, **{k: list(v) for k, v in seen.items()}}


async def node_loss_figures(cluster: RayCluster, actor_cls: Any) -> dict[str, Any]:
    """An actor (max_restarts=1, soft affinity) on a node that is SIGKILLed mid-job."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    victim = cluster.add_node("victim", num_cpus=1)
    assert victim.node_id is not None
    # soft affinity falls back to another node until the scheduler knows the new one
    probe = actor_cls.options(resources={victim.resource: 1}, num_cpus=0).remote(SLOW)
    await probe.ready.remote()
    ray.kill(probe)
    actor = actor_cls.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(victim.node_id, soft=True),
        max_restarts=1, max_concurrency=4).remote(SLOW, "cpu", 1)
    placed = (await actor.where.remote())["node_id"]
    stream = actor.run.remote("lost", {"sleep_s": 60}, sample_png(64))
    first = await stream.__anext__()
    await first
    killed_at = time.perf_counter()
    victim.kill()
    error: BaseException | None = None
    try:
        async for ref in stream:
            await ref
    except Exception as exc:
        error = exc
    seen_s = time.perf_counter() - killed_at
    names = {n.node_id: n.name for n in cluster.nodes}
    while True:  # Ray queues calls while it restarts the actor elsewhere
        try:
            where = await actor.where.remote()
            break
        except Exception:
            await asyncio.sleep(0.2)
    return {"error": type(error).__name__, "message": str(error)[:300],
            "caller_sees_s": round(seen_s, 2),
            "placed_on": names.get(placed), "restarted_on": names.get(where["node_id"]),
            "answers_again_s": round(time.perf_counter() - killed_at, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--memory-jobs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-facts-"))
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    cluster = RayCluster(work / "c", env=env)
    os.environ.update(cluster.client_env)  # before anything imports ray (it reads them then)
    figures: dict[str, Any] = {"load_avg": os.getloadavg()}
    try:
        t = time.perf_counter()
        cluster.start(num_cpus=1)
        figures["head_start_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        cluster.add_node("n1", num_cpus=1)
        figures["node_start_s"] = round(time.perf_counter() - t, 2)
        time.sleep(3)
        figures["idle_mb"] = {n.name: n.memory_mb() for n in cluster.nodes}
        note('figures["connect_s"] =')
        figures["connect_s"] = ray_connect_s(cluster.address)
        note('figures.update(asyncio.run')
        figures.update(asyncio.run(_with_driver(cluster, work, args)))
        figures["stop_s"] = round(cluster.stop(), 2)
    finally:
        if cluster.leftovers():
            cluster.stop()
    print(table(figures.pop("calls"), ["path", "n", "p50", "p95", "p99", "mean"]))
    for key, value in figures.items():
        print(f"{key}: {value}")
    print("saved", save("ray_facts", figures))


async def _with_driver(cluster: RayCluster, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from hub3d.workers.ray_actor import RUNTIME_ENV, ModelActor

    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        actor_cls: Any = ray.remote(ModelActor)  # Ray's stubs do not type actor classes
        echo_cls: Any = ray.remote(Echo)
        rows: list[dict[str, Any]] = []
        out: dict[str, Any] = {}
        note('rows.append({"path": "local pipe')
        rows.append({"path": "local pipe (100 kB → 300 kB)", **await pipe_round_trips(args.calls)})
        note('rows.append({"path": "local process work')
        rows.append({"path": "local process worker, echo job",
                     **await local_worker_jobs(args.calls, work / "local")})
        for node in ("head", "n1"):
            # num_cpus=0: an actor holds its CPU while it lives, and these share one node
            where = {"resources": {f"hub3d_{node}": 1}, "num_cpus": 0}
            echo = echo_cls.options(**where).remote()
            data = os.urandom(IN_BYTES)

            async def plain() -> None:
                await echo.echo.remote(data, OUT_BYTES)  # noqa: B023 — awaited in this loop turn

            note('rows.append({"path": f"ray plain call')
            rows.append({"path": f"ray plain call, actor on {node}",
                         **await timed(plain, args.calls)})
            for size in (IN_BYTES, 2_000_000):
                blob = os.urandom(size)

                async def by_value() -> None:
                    await echo.echo.remote(blob, 10)  # noqa: B023

                async def by_put() -> None:
                    await echo.echo.remote(ray.put(blob), 10)  # noqa: B023

                rows.append({"path": f"{node}: {size // 1000} kB in by value",
                             **await timed(by_value, args.calls // 2)})
                rows.append({"path": f"{node}: {size // 1000} kB in via ray.put",
                             **await timed(by_put, args.calls // 2)})
            note('model = actor_cls.options(**where')
            for label, env in (("", {}), (", results ≤ 1 MiB inline", RUNTIME_ENV)):
                model = actor_cls.options(**where, max_concurrency=4, runtime_env=env).remote(
                    ECHO, "cpu", 1)
                await model.ready.remote()
                (work / node).mkdir(parents=True, exist_ok=True)
                rows.append({"path": f"ray ModelActor.run echo job, actor on {node}{label}",
                             **await ray_jobs(model, args.calls, work / node)})
                ray.kill(model)
        note('out["calls"] = rows')
        out["calls"] = rows
        inflate = actor_cls.options(resources={"hub3d_n1": 1}, num_cpus=0,
                                    runtime_env=RUNTIME_ENV).remote(
            "inflate", "cpu", 1)
        t = time.perf_counter()
        await inflate.ready.remote()
        out["inflate_actor_start_s"] = round(time.perf_counter() - t, 2)
        out["memory_after_jobs_mb"] = await inflate_memory(inflate, work, args.memory_jobs)
        slow = actor_cls.options(resources={"hub3d_head": 1}, num_cpus=0, max_concurrency=4).remote(
            SLOW, "cpu", 2)
        await slow.ready.remote()
        note('out["cancel"] = await')
        out["cancel"] = await cancel_figures(slow)
        note('out["node_loss"] = await')
        out["node_loss"] = await node_loss_figures(cluster, actor_cls)
        return out
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
