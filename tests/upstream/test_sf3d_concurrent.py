"""Several jobs at once on one SF3D model copy (--jobs-per-worker), with the real SF3D code
(the tier's reduced model, the sphere density): the GLBs are those of the same jobs run one by
one, byte for byte; a failing job fails alone; a cancel stops only its job; kill -9 of the
worker ends every job it held with the reason and leaves nothing half-written; one process
holds the model however many jobs run."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from PIL import Image

from tests.servers import ServerProcess, wait_done
from tests.upstream.test_sf3d_serve import JOB_S, SPHERE, _disc, _done, _submit, _worker_env

pytestmark = pytest.mark.upstream
JOBS = 3
# the same inputs, one each: different sizes and framings give different meshes
INPUTS = [(_disc(224), 0.85), (_disc(256), 0.7), (_disc(192), 0.95)]


@pytest.fixture(scope="module")
def server(sf3d_env: Path, sf3d_src: Path, model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("together")
    srv = ServerProcess(tmp / "data", ["--models", SPHERE, "--jobs-per-worker", str(JOBS)],
                        env=_worker_env(sf3d_env, sf3d_src, model_dir, tmp)).start(60)
    yield srv
    srv.stop()


def _workers(url: str) -> list[dict[str, Any]]:
    [model] = requests.get(f"{url}/models", timeout=5).json()
    return list(model["workers"])


def _glb(url: str, job_id: str) -> bytes:
    return requests.get(f"{url}/job/{job_id}/download", timeout=30).content


def _most_at_once(url: str, stop: threading.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(max((len(w["jobs"]) for w in _workers(url)), default=0))
        time.sleep(0.05)


def test_jobs_run_together_give_the_glbs_of_the_same_jobs_run_alone(
        server: ServerProcess) -> None:
    """The same worker (so the same model copy and CPU thread budget) runs the jobs one by one,
    then all at once: the GLBs are the same bytes."""
    url = server.url
    alone = []
    for img, ratio in INPUTS:
        alone.append(_submit(url, img, texture_resolution=512, foreground_ratio=ratio))
        _done(url, alone[-1])
    stop, seen = threading.Event(), []
    watch = threading.Thread(target=_most_at_once, args=(url, stop, seen))
    watch.start()
    try:
        ids = [_submit(url, img, texture_resolution=512, foreground_ratio=r) for img, r in INPUTS]
        jobs = [_done(url, j) for j in ids]
    finally:
        stop.set()
        watch.join()
    assert max(seen) == JOBS, seen  # one worker really held all three at once
    assert len({j["device"] for j in jobs}) == 1 and len(_workers(url)) == 1
    for a, b in zip(alone, ids, strict=True):
        assert _glb(url, a) == _glb(url, b)  # byte for byte
    # whatever ran before, the seed, image and parameters decide (even the textures' dither)
    img, ratio = INPUTS[0]
    other = _submit(url, img, texture_resolution=512, foreground_ratio=ratio, seed=7)
    _done(url, other)
    assert _glb(url, other) != _glb(url, alone[0])


def test_a_failing_job_among_others_fails_alone(server: ServerProcess) -> None:
    url = server.url
    empty = Image.new("RGBA", (128, 128), (0, 0, 0, 0))  # nothing to reconstruct
    ids = [_submit(url, _disc(), texture_resolution=512), _submit(url, empty),
           _submit(url, _disc(200), texture_resolution=512)]
    ends = [wait_done(url, j, JOB_S) for j in ids]
    assert [e["status"] for e in ends] == ["completed", "failed", "completed"], ends
    assert ends[1]["error_code"] == "no_object_detected", ends[1]


def test_cancel_stops_one_job_and_the_others_finish(server: ServerProcess) -> None:
    url = server.url
    pid = _workers(url)[0]["pid"]
    ids = [_submit(url, img, texture_resolution=1024, remesh_option="quad")
           for img, _ in INPUTS]
    end = time.monotonic() + JOB_S
    while requests.get(f"{url}/job/{ids[1]}", timeout=5).json()["status"] != "processing":
        assert time.monotonic() < end
        time.sleep(0.02)
    canceled = requests.delete(f"{url}/job/{ids[1]}", timeout=10).json()
    assert (canceled["status"], canceled["error_code"]) == ("canceled", "canceled")
    ends = [wait_done(url, j, JOB_S) for j in ids]
    assert [e["status"] for e in ends] == ["completed", "canceled", "completed"], ends
    assert _workers(url)[0]["pid"] == pid  # its worker went on: only the job stopped
    assert requests.get(f"{url}/job/{ids[1]}/download", timeout=10).status_code == 409


def test_kill_9_ends_every_job_the_worker_held_and_leaves_nothing_half_written(
        server: ServerProcess) -> None:
    srv = server
    ids = [_submit(srv.url, img, texture_resolution=1024, remesh_option="quad")
           for img, _ in INPUTS]
    end = time.monotonic() + JOB_S
    while {requests.get(f"{srv.url}/job/{j}", timeout=5).json()["stage"]
           for j in ids} != {"inference"}:  # all three inside run_image at once
        assert time.monotonic() < end, _workers(srv.url)
        time.sleep(0.02)
    os.kill(int(_workers(srv.url)[0]["pid"]), signal.SIGKILL)
    ends = [wait_done(srv.url, j, JOB_S) for j in ids]
    for job in ends:
        assert (job["status"], job["error_code"]) == ("failed", "worker_crashed"), job
        assert job["error"] == "model worker died (signal 9) — likely out of memory"
        folder = srv.data_dir / "jobs" / job["job_id"]
        assert not (folder / "result.glb").exists()
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    after = _done(srv.url, _submit(srv.url, _disc(), texture_resolution=512))
    assert after["timings"]["model_load"] > 0  # a fresh worker loaded the model


def test_one_model_copy_serves_them_all(server: ServerProcess) -> None:
    """Peak memory of one worker running three jobs at once, against its own size loaded
    and idle: the model is there once, each job adds only its working memory."""
    url = server.url
    proc = psutil.Process(int(_workers(url)[0]["pid"]))
    idle = proc.memory_info().rss
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(proc.memory_info().rss)
            time.sleep(0.02)

    watch = threading.Thread(target=sample)
    watch.start()
    try:
        for job_id in [_submit(url, img, texture_resolution=512) for img, _ in INPUTS]:
            _done(url, job_id)
    finally:
        stop.set()
        watch.join()
    assert server.proc is not None
    children = [p for p in psutil.Process(server.proc.pid).children(True)
                if "hub3d.workers" in " ".join(p.cmdline())]
    assert len(children) == 1  # one process holds the model
    print(f"\nworker RSS idle {idle / 2**20:.0f} MB, peak with {JOBS} jobs at once "
          f"{max(peak) / 2**20:.0f} MB")
    assert max(peak) < 2 * idle  # three jobs at once stay under a second copy's worth
