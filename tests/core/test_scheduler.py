"""Scheduler, pool and worker processes together, below HTTP: every transition reached directly."""

from __future__ import annotations

import json
from pathlib import Path

from hub3d.jobs.record import JobStatus
from tests.core.harness import Core, run
from tests.gltf_check import assert_valid_glb


def test_a_job_runs_to_completed_with_its_files(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            job = await core.wait(core.submit(sleep_s=0.01).id)
            assert job.status is JobStatus.COMPLETED and job.result == "result.glb", job
            folder = core.store.job_dir(job.id)
            assert_valid_glb((folder / "result.glb").read_bytes())
            meta = json.loads((folder / "metadata.json").read_text())
            assert meta["params"] == job.params and meta["device"] == "cpu"
            assert {"inference", "queue_wait"} <= set(job.timings)
        finally:
            await core.stop()
    run(main())


def test_a_model_error_fails_the_job_and_keeps_the_worker(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            failed = await core.wait(core.submit(fail="error").id)
            assert failed.status is JobStatus.FAILED
            assert failed.error == "the test backend was asked to fail" and failed.result is None
            assert failed.error_code == "model_error"
            pid = core.pool.models["slow"].slots[0].worker.pid  # type: ignore[union-attr]
            ok = await core.wait(core.submit().id)
            assert ok.status is JobStatus.COMPLETED
            assert json.loads((core.store.job_dir(ok.id) / "metadata.json").read_text())[
                "worker_pid"] == pid
        finally:
            await core.stop()
    run(main())


def test_a_crash_fails_the_job_with_the_reason_and_the_next_job_gets_a_new_worker(
        tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            first = await core.wait(core.submit().id)
            crashed = await core.wait(core.submit(fail="segfault").id)
            assert crashed.status is JobStatus.FAILED
            assert "segmentation fault" in (crashed.error or ""), crashed.error
            assert crashed.error_code == "worker_crashed"
            after = await core.wait(core.submit().id)
            assert after.status is JobStatus.COMPLETED
            pids = [json.loads((core.store.job_dir(j.id) / "metadata.json").read_text())[
                "worker_pid"] for j in (first, after)]
            assert pids[0] != pids[1]
        finally:
            await core.stop()
    run(main())


def test_cancel_queued_and_running_jobs(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            running = core.submit(sleep_s=30)
            waiting = core.submit()
            await core.until(lambda: core.job(running.id).stage == "inference")
            canceled = core.sched.cancel(waiting.id)
            assert canceled.status is JobStatus.CANCELED
            core.sched.cancel(running.id)  # kills its worker: the only way to stop a model
            await core.settle()
            for job_id in (running.id, waiting.id):
                job = core.job(job_id)
                assert job.status is JobStatus.CANCELED and job.result is None, job
            assert not (core.store.job_dir(waiting.id) / "result.glb").exists()
            assert (await core.wait(core.submit().id)).status is JobStatus.COMPLETED
        finally:
            await core.stop()
    run(main())


def test_a_done_that_arrives_after_cancel_does_not_resurrect_the_job(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            job = core.submit(sleep_s=0.5)
            await core.until(lambda: core.job(job.id).stage == "inference")
            # A cancel recorded while the worker still runs (as a cancel racing the worker's
            # answer): the worker is left alive, so its Done does arrive.
            core.store.update(job.id, status=JobStatus.CANCELED, stage=None,
                              message="canceled by request")
            await core.until(lambda: core.pool.models["slow"].slots[0].job_id is None, 10)
            await core.settle()
            after = core.job(job.id)
            assert after.status is JobStatus.CANCELED and after.result is None, after
            # nor did its later stage lines ("exporting") touch the canceled job
            assert after.stage is None and after.message == "canceled by request", after
            assert not (core.store.job_dir(job.id) / "metadata.json").exists()
        finally:
            await core.stop()
    run(main())


def test_restart_mid_job_retries_it_once(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            job = core.submit(sleep_s=30)
            await core.until(lambda: core.job(job.id).stage == "inference")
            await core.restart()  # cut off mid-job: it goes back to the queue and runs again
            await core.until(lambda: core.job(job.id).attempts == 2, 20)
            assert core.job(job.id).status is JobStatus.PROCESSING
        finally:
            await core.stop()
        core2 = await Core(tmp_path).start()  # a second restart: the job's last try
        try:
            final = await core2.wait(job.id)
            assert final.status is JobStatus.FAILED
            assert "restarted while processing" in (final.error or "")
            assert final.error_code == "interrupted"
        finally:
            await core2.stop()
    run(main())


def test_preload_starts_every_worker_of_the_model(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path, slots=2, options={"preload": True}).start()
        try:
            slots = core.pool.models["slow"].slots
            await core.until(lambda: all(s.ready for s in slots), 30)
            assert len({s.worker.pid for s in slots if s.worker}) == 2
            assert not core.pool.running()  # the preload leases are all given back
        finally:
            await core.stop()
    run(main())
