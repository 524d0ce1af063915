"""Crashes and restarts: nothing accepted is lost, nothing stays 'processing'."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import TEST_MODELS
from tests.servers import ServerProcess, wait_done

Start = Callable[..., ServerProcess]


def submit(url: str, png_b64: str, **params: object) -> str:
    r = requests.post(f"{url}/generate", json={"image": png_b64, "model": "slow", **params})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def wait_stage(url: str, job_id: str, stage: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = requests.get(f"{url}/job/{job_id}").json()
        if job["stage"] == stage:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} never reached {stage}")


def worker_pid(url: str, model: str = "slow") -> int:
    models = {m["name"]: m for m in requests.get(f"{url}/models").json()}
    return int(models[model]["workers"][0]["pid"])


def test_kill_9_worker_fails_its_job_and_next_job_succeeds(start_server: Start,
                                                           png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    victim = submit(srv.url, png_b64, sleep_s=30)
    wait_stage(srv.url, victim, "inference")
    os.kill(worker_pid(srv.url), signal.SIGKILL)
    job = wait_done(srv.url, victim)
    assert job["status"] == "failed"
    assert job["error"] == "model worker died (signal 9) — likely out of memory"
    assert job["timings"]["inference"] > 0 and "model_load" in job["timings"]  # kept
    assert wait_done(srv.url, submit(srv.url, png_b64))["status"] == "completed"
    assert requests.get(f"{srv.url}/health").json()["status"] == "healthy"


def test_a_failing_after_step_keeps_the_job_and_the_worker(start_server: Start,
                                                           png_b64: str) -> None:
    """Work done after `done` (a preview) is optional: its failure is logged, nothing else."""
    srv = start_server("--models", TEST_MODELS)
    first = wait_done(srv.url, submit(srv.url, png_b64, fail="after"))
    assert first["status"] == "completed", first
    pid = worker_pid(srv.url)
    assert wait_done(srv.url, submit(srv.url, png_b64))["status"] == "completed"
    assert worker_pid(srv.url) == pid  # the same worker ran the next job
    glb = requests.get(f"{srv.url}/job/{first['job_id']}/download").content
    assert glb[:4] == b"glTF"


def test_segfault_exit_and_oom_each_fail_with_a_reason(start_server: Start, png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    seg = wait_done(srv.url, submit(srv.url, png_b64, fail="segfault"))
    assert seg["status"] == "failed" and "signal 11" in seg["error"], seg
    ext = wait_done(srv.url, submit(srv.url, png_b64, fail="exit"))
    assert ext["status"] == "failed" and "exit code 3" in ext["error"], ext
    first = wait_done(srv.url, submit(srv.url, png_b64))
    pid_before = worker_pid(srv.url)
    oom = wait_done(srv.url, submit(srv.url, png_b64, fail="oom"))
    assert oom["status"] == "failed" and "out of memory" in oom["error"].lower()
    after = wait_done(srv.url, submit(srv.url, png_b64))
    assert first["status"] == after["status"] == "completed"
    assert worker_pid(srv.url) != pid_before, "an OOM must replace the worker process"


def test_restart_with_queued_jobs_finishes_them_all(start_server: Start, png_b64: str,
                                                    tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server("--models", TEST_MODELS, "--max-queue-size", "20", data_dir=data)
    first = submit(srv.url, png_b64, sleep_s=0.5)
    queued = [submit(srv.url, png_b64, sleep_s=0.05) for _ in range(6)]
    assert srv.stop() == 0  # SIGTERM: a clean exit, jobs stay in the store
    srv2 = start_server("--models", TEST_MODELS, data_dir=data, port=srv.port)
    sizes = set()
    for jid in [first, *queued]:
        job = wait_done(srv2.url, jid)
        assert job["status"] == "completed", job
        body = requests.get(f"{srv2.url}/job/{jid}/download").content
        assert body[:4] == b"glTF"
        sizes.add(len(body))
    assert len(sizes) == 1


def test_kill_9_server_mid_job_retries_once(start_server: Start, png_b64: str,
                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server("--models", TEST_MODELS, data_dir=data)
    jid = submit(srv.url, png_b64, sleep_s=2)
    waiting = [submit(srv.url, png_b64) for _ in range(3)]
    wait_stage(srv.url, jid, "inference")
    srv.kill()  # the whole process group, workers included: like a culled kernel
    srv2 = start_server("--models", TEST_MODELS, data_dir=data)
    job = wait_done(srv2.url, jid)
    assert job["status"] == "completed" and job["message"] != ""
    for w in waiting:
        assert wait_done(srv2.url, w)["status"] == "completed"


def test_job_cut_off_twice_fails_with_reason(start_server: Start, png_b64: str,
                                             tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server("--models", TEST_MODELS, data_dir=data)
    jid = submit(srv.url, png_b64, sleep_s=60)
    for _ in range(2):
        wait_stage(srv.url, jid, "inference")
        srv.kill()
        srv = start_server("--models", TEST_MODELS, data_dir=data)
    job = wait_done(srv.url, jid)
    assert job["status"] == "failed" and "server restarted while processing" in job["error"]


def test_broken_model_degrades_health_never_crashes(start_server: Start, png_b64: str) -> None:
    srv = start_server("--models", "inflate,broken=tests.backends.testing:BrokenLoadBackend",
                       "--preload")
    end = time.monotonic() + 30
    while requests.get(f"{srv.url}/health").json()["status"] != "degraded":
        assert time.monotonic() < end
        time.sleep(0.1)
    health = requests.get(f"{srv.url}/health").json()
    assert "weights not found" in health["models"]["broken"]["error"]
    assert health["models"]["broken"]["state"] == "failed"
    r = requests.post(f"{srv.url}/generate", json={"image": png_b64, "model": "broken"})
    message = r.json()["error"]["message"]
    assert r.status_code == 503 and "failed to load" in message
    assert "retries the load after 30 s" in message and "{" not in message
    ok = requests.post(f"{srv.url}/generate/sync", json={"image": png_b64})
    assert ok.status_code == 200 and ok.content[:4] == b"glTF"


def test_expired_results_are_cleaned_up(start_server: Start, png_b64: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server("--models", TEST_MODELS, "--result-ttl-hours", "0.0003", data_dir=data)
    jid = submit(srv.url, png_b64)
    assert wait_done(srv.url, jid)["status"] == "completed"
    assert (data / "jobs" / jid).is_dir()
    srv.stop()
    time.sleep(1.2)  # TTL is ~1 s; cleanup also runs at start
    srv2 = start_server("--models", TEST_MODELS, "--result-ttl-hours", "0.0003", data_dir=data)
    assert requests.get(f"{srv2.url}/job/{jid}").status_code == 404
    assert not (data / "jobs" / jid).exists()
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE id = ?", (jid,)).fetchone()[0] == 0


def test_worker_runs_under_the_configured_python(start_server: Start, png_b64: str,
                                                 tmp_path: Path) -> None:
    # A wrapper interpreter that leaves a mark: proves HUB3D_PYTHON_<NAME> is what gets spawned.
    mark = tmp_path / "spawned-by-wrapper"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\ntouch "{mark}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    srv = start_server("--models", TEST_MODELS, env={"HUB3D_PYTHON_SLOW": str(wrapper)})
    assert wait_done(srv.url, submit(srv.url, png_b64))["status"] == "completed"
    assert mark.exists()
    slow = {m["name"]: m for m in requests.get(f"{srv.url}/models").json()}["slow"]
    assert slow["state"] == "ready"


def test_timings_name_the_model_load_and_survive_a_failure(start_server: Start,
                                                           png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    first = wait_done(srv.url, submit(srv.url, png_b64, sleep_s=0.3, fail="error"))
    assert first["status"] == "failed" and "asked to fail" in first["error"]
    spent = first["timings"]
    assert {"intake", "model_load", "preprocessing", "total", "queue_wait"} <= set(spent), spent
    assert spent["inference"] >= 0.3 and spent["model_load"] > 0
    second = wait_done(srv.url, submit(srv.url, png_b64))
    assert second["status"] == "completed"
    assert "model_load" not in second["timings"]  # the worker was up: nothing was loaded
    assert second["timings"]["total"] > 0
