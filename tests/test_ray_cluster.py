"""The Ray facts the Ray pool is built on, on a real 2-node cluster on this machine (marker `ray`).

Placement on a chosen node, stage reports streamed while a job runs, cancel of one call among
several, a node SIGKILLed mid-job as its caller sees it, and a cluster that leaves no process
behind, even when the process that started it is killed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import psutil
import pytest

from hub3d.workers.protocol import Failed, LoadFailed, Ready, Stage
from tests.conftest import REPO, make_png
from tests.gltf_check import assert_valid_glb

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

SLOW = "slow=tests.backends.testing:SlowBackend"


def model_actor(ray: Any, **options: Any) -> Any:
    from hub3d.workers.ray_actor import RUNTIME_ENV, ModelActor

    options.setdefault("num_cpus", 0)  # an actor holds its CPUs while it lives
    return ray.remote(ModelActor).options(runtime_env=RUNTIME_ENV, **options)


async def follow(stream: Any, started: float) -> list[tuple[float, Any]]:
    """Every item of a job's stream with the second it arrived."""
    return [(time.perf_counter() - started, await ref) async for ref in stream]


def test_actors_run_on_the_node_chosen_by_its_resource_or_its_id(ray_driver: Any,
                                                                 ray_cluster: Any) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head, n1 = ray_cluster.head, ray_cluster.node("n1")
    assert head.node_id != n1.node_id
    by_resource = {node.name: model_actor(ray_driver, resources={node.resource: 1}).remote(
        "inflate") for node in (head, n1)}
    by_id = model_actor(ray_driver, scheduling_strategy=NodeAffinitySchedulingStrategy(
        n1.node_id, soft=False)).remote("inflate")
    where = ray_driver.get([a.where.remote() for a in (*by_resource.values(), by_id)], timeout=60)
    assert [w["node_id"] for w in where] == [head.node_id, n1.node_id, n1.node_id]
    # each actor is a process of its node: killing a node kills its actors
    assert where[1]["pid"] in {p.pid for p in n1.processes()}
    assert where[0]["pid"] in {p.pid for p in head.processes()}
    # one actor per node, placed by Ray: SPREAD with a whole CPU each
    spread = [model_actor(ray_driver, num_cpus=1, scheduling_strategy="SPREAD").remote("inflate")
              for _ in range(2)]
    nodes = {w["node_id"] for w in ray_driver.get([a.where.remote() for a in spread], timeout=60)}
    assert nodes == {head.node_id, n1.node_id}
    for actor in (*by_resource.values(), by_id, *spread):
        ray_driver.kill(actor)


def test_an_inflate_job_streams_its_stages_and_returns_a_valid_glb(ray_driver: Any,
                                                                   ray_cluster: Any) -> None:
    from hub3d.workers.ray_actor import Finished, ResultFile

    actor = model_actor(ray_driver, resources={"hub3d_n1": 1}).remote("inflate")
    assert isinstance(ray_driver.get(actor.ready.remote(), timeout=60), Ready)
    items = asyncio.run(follow(actor.run.remote("j1", {"texture_resolution": 256},
                                                make_png(256)), time.perf_counter()))
    kinds = [type(item).__name__ for _, item in items]
    assert kinds == ["Stage", "Stage", "Stage", "Finished", "ResultFile"], kinds
    assert [item.stage for _, item in items[:3]] == ["preprocessing", "inference", "exporting"]
    finished, preview = items[3][1], items[4][1]
    assert isinstance(finished, Finished) and isinstance(preview, ResultFile)
    assert finished.done.result == "result.glb"
    assert finished.done.media_type == "model/gltf-binary"
    assert set(finished.done.timings) >= {"preprocessing", "inference", "exporting", "total"}
    assert_valid_glb(finished.data)
    assert preview.name == "preview.png" and preview.data.startswith(b"\x89PNG")
    ray_driver.kill(actor)


def test_stages_reach_the_caller_while_the_job_runs(ray_driver: Any, ray_cluster: Any) -> None:
    actor = model_actor(ray_driver, resources={"hub3d_n1": 1}).remote(SLOW)
    ray_driver.get(actor.ready.remote(), timeout=60)
    items = asyncio.run(follow(actor.run.remote("s", {"sleep_s": 3}, make_png(64)),
                               time.perf_counter()))
    inference = next(t for t, item in items if isinstance(item, Stage)
                     and item.stage == "inference")
    assert inference < 2.0, items  # seen during the 3 s sleep, not at the end
    assert items[-1][0] >= 3.0
    ray_driver.kill(actor)


def test_a_model_that_fails_to_load_says_why_and_fails_its_jobs(ray_driver: Any,
                                                                ray_cluster: Any) -> None:
    actor = model_actor(ray_driver).remote("broken=tests.backends.testing:BrokenLoadBackend")
    status = ray_driver.get(actor.ready.remote(), timeout=60)
    assert status == LoadFailed("RuntimeError: weights not found at /nonexistent/model.safetensors")
    with pytest.raises(Exception, match="the model did not load"):
        asyncio.run(follow(actor.run.remote("x", {}, make_png(64)), time.perf_counter()))
    ray_driver.kill(actor)


def test_cancel_ends_only_that_call_and_its_backend_at_the_next_stage(
        ray_driver: Any, ray_cluster: Any) -> None:
    from ray.exceptions import TaskCancelledError

    from hub3d.workers.ray_actor import Finished

    actor = model_actor(ray_driver, resources={"hub3d_head": 1}, max_concurrency=8).remote(
        SLOW, "cpu", 2)
    ray_driver.get(actor.ready.remote(), timeout=60)

    async def scenario() -> tuple[list[tuple[float, Any]], float, list[str]]:
        started = time.perf_counter()
        kept = asyncio.create_task(follow(actor.run.remote("kept", {"sleep_s": 3},
                                                           make_png(64)), started))
        dropped_stream = actor.run.remote("dropped", {"sleep_s": 3}, make_png(64))
        dropped = asyncio.create_task(follow(dropped_stream, started))
        await asyncio.sleep(1)
        ray_driver.cancel(dropped_stream)
        canceled_at = time.perf_counter()
        with pytest.raises(TaskCancelledError):
            await dropped
        seen_after = time.perf_counter() - canceled_at
        running = await actor.running.remote()
        return await kept, seen_after, running

    kept, seen_after, running_after_cancel = asyncio.run(scenario())
    assert seen_after < 1.0
    assert isinstance(kept[-1][1], Finished) and kept[-1][0] >= 3.0
    # A thread cannot be interrupted: the cancelled backend sleeps on, then stops at its next
    # stage report; nobody reads it, yet it ends and frees its thread.
    assert "dropped" in running_after_cancel
    deadline = time.monotonic() + 2
    while ray_driver.get(actor.running.remote(), timeout=10):
        assert time.monotonic() < deadline, "the cancelled job's thread did not end"
        time.sleep(0.05)

    async def two() -> list[list[tuple[float, Any]]]:
        t = time.perf_counter()
        return await asyncio.gather(*(follow(actor.run.remote(f"n{i}", {"sleep_s": 1},
                                                              make_png(64)), t) for i in (1, 2)))

    for items in asyncio.run(two()):  # both threads free: two jobs at once, 1 s each
        assert isinstance(items[-1][1], Finished) and items[-1][0] < 1.9, items
    ray_driver.kill(actor)


def test_a_killed_actors_job_folders_are_removed_by_the_next_actor(ray_driver: Any,
                                                                   ray_cluster: Any) -> None:
    """A killed actor cleans nothing up; its scratch folder holds a user's image."""
    scratch = ray_cluster.root / "tmp" / "hub3d-ray-jobs"  # the nodes' TMPDIR
    first = model_actor(ray_driver, resources={"hub3d_n1": 1}).remote(SLOW)
    pid = ray_driver.get(first.where.remote(), timeout=60)["pid"]

    async def start_a_job() -> Any:
        stream = first.run.remote("left", {"sleep_s": 60}, make_png(64))
        await (await stream.__anext__())
        return stream

    stream = asyncio.run(start_a_job())
    left = list(scratch.glob(f"{pid}-*/left-*/input.png"))
    assert len(left) == 1, sorted(scratch.rglob("*"))
    ray_driver.kill(first)  # like a crash: no exit handler runs
    del stream
    deadline = time.monotonic() + 10
    while _running(pid):
        assert time.monotonic() < deadline, "the killed actor's process is still running"
        time.sleep(0.1)
    assert left[0].exists()
    second = model_actor(ray_driver, resources={"hub3d_n1": 1}).remote(SLOW)
    ray_driver.get(second.ready.remote(), timeout=60)
    assert not left[0].parent.parent.exists()
    ray_driver.kill(second)


def test_a_node_killed_mid_job_fails_the_call_and_its_actor_restarts_on_a_live_node(
        ray_driver: Any, ray_cluster: Any) -> None:
    from ray.exceptions import ActorUnavailableError

    victim = ray_cluster.add_node("victim", num_cpus=1)
    # Placed by its resources, as a model's actor is (a GPU, or a CPU here): while the other
    # nodes' CPUs are taken, only the victim has one; then they are freed for the restart.
    # (Soft node affinity would do it too, but it falls back to any node while the scheduler's
    # view of a new node lags, so it lands elsewhere now and then.)
    holders = [model_actor(ray_driver, num_cpus=1, resources={node.resource: 1}).remote(SLOW)
               for node in (ray_cluster.head, ray_cluster.node("n1"))]
    ray_driver.get([h.ready.remote() for h in holders], timeout=60)
    actor = model_actor(ray_driver, num_cpus=1, max_restarts=1).remote(SLOW)
    assert ray_driver.get(actor.where.remote(), timeout=60)["node_id"] == victim.node_id
    for holder in holders:
        ray_driver.kill(holder)

    async def scenario() -> tuple[BaseException | None, float]:
        stream = actor.run.remote("lost", {"sleep_s": 60}, make_png(64))
        assert isinstance(await (await stream.__anext__()), Stage)  # the job is running
        killed = victim.kill()
        assert killed and not victim.processes()
        killed_at = time.perf_counter()
        try:
            async for ref in stream:
                await ref
        except Exception as exc:
            return exc, time.perf_counter() - killed_at
        return None, time.perf_counter() - killed_at

    error, after = asyncio.run(scenario())
    assert isinstance(error, ActorUnavailableError), error
    assert "may or may not have been executed" in str(error)
    assert after < 10.0
    # Ray restarts the actor on another node once the dead one is declared dead (missed health
    # checks); soft affinity lets it pick any
    deadline = time.monotonic() + 50
    while True:
        try:
            where = ray_driver.get(actor.where.remote(), timeout=10)
            break
        except (ActorUnavailableError, ray_driver.exceptions.GetTimeoutError):
            assert time.monotonic() < deadline, "the actor was not restarted"
    assert where["node_id"] in {ray_cluster.head.node_id, ray_cluster.node("n1").node_id}
    items = asyncio.run(follow(actor.run.remote("again", {"sleep_s": 0}, make_png(64)),
                               time.perf_counter()))
    assert not isinstance(items[-1][1], Failed)
    ray_driver.kill(actor)


def test_a_control_plane_thread_drives_jobs_from_its_own_event_loop(ray_cluster: Any) -> None:
    """As the server does (uvicorn's thread, maybe inside a notebook kernel): ray.init, then
    `async for` over a job's stream, all outside the main thread."""
    script = textwrap.dedent(f"""
        import asyncio, logging, threading
        import ray
        from hub3d.workers.ray_actor import Finished, ModelActor
        from tests.conftest import make_png

        def control_plane():
            ray.init(address={ray_cluster.address!r}, log_to_driver=False,
                     logging_level=logging.ERROR)
            actor = ray.remote(ModelActor).options(num_cpus=0).remote("inflate")

            async def job():
                return [await ref async for ref in actor.run.remote("t", {{}}, make_png(64))]

            items = asyncio.run(job())
            print(threading.current_thread().name, [type(i).__name__ for i in items])
            ray.shutdown()

        thread = threading.Thread(target=control_plane, name="uvicorn")
        thread.start()
        thread.join()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, timeout=90, env={**os.environ, **ray_cluster.client_env})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "uvicorn ['Stage', 'Stage', 'Stage', 'Finished', 'ResultFile']" in out.stdout


def test_a_client_without_the_cluster_token_is_refused(ray_cluster: Any) -> None:
    """Ray listens on every interface: the token is what keeps others out. The ConnectionError
    comes after Ray's 20 retries, 1 s apart; the traceback before it names the token."""
    script = textwrap.dedent(f"""
        import ray
        ray.init(address={ray_cluster.address!r}, log_to_driver=False)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, timeout=90, env=env)
    assert out.returncode == 1
    assert "ConnectionError: Failed to connect to Ray cluster at" in out.stderr
    assert "AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing" \
        " or incorrect" in out.stderr
    assert time.monotonic() - started < 40


def test_a_killed_test_run_leaves_no_ray_process(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The process that started a cluster is SIGKILLed: every process of its nodes ends."""
    if importlib.util.find_spec("ray") is None:  # not imported here: see ray_driver
        pytest.skip("Ray is not installed: pip install -e '.[test]'")
    root = tmp_path_factory.mktemp("rk")  # short: Ray's socket paths must fit in 107 bytes
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tests.ray_cluster import RayCluster
        cluster = RayCluster(Path({str(root)!r})).start()
        print(" ".join(str(p.pid) for p in cluster.head.processes()), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 4, pids  # ray start, gcs_server, raylet, agents
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while alive := [p for p in pids if _running(p)]:
        assert time.monotonic() < deadline, f"Ray processes left: {alive}"
        time.sleep(0.2)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
