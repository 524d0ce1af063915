"""Every job ends, and only a job with its result on disk is `completed`: a backend breaks
each part of its contract in turn (tests/backends/faulty.py), and after each the job has ended
with a reason and a code, the next job on the same model completes, and no job is left
`processing` without a live worker holding it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub3d.jobs.record import Job, JobStatus
from tests.backends.faulty import FAULTS
from tests.core.harness import FAULTY, Core, run

BUG = "server-side bug in model 'faulty'"
# fault → (error code, words of the reason, whether its worker is replaced)
EXPECTED = {
    "raise": ("internal", f"{BUG}: its backend raised RuntimeError: the backend tripped", False),
    "not_a_job_output": ("internal", f"{BUG}: its backend returned dict, not a JobOutput",
                         False),
    "path_as_str": ("internal", "returned result_path '", False),
    "media_type_none": ("internal", "returned media_type None", False),
    "metadata_list": ("internal", "returned metadata \"['not', 'a', 'dict']\"", False),
    "metadata_int_keys": ("internal", "not a dict with string keys", False),
    "after_not_callable": ("internal", "returned after='later', not a callable", False),
    "no_file": ("internal", "returned result result.glb but never wrote it", False),
    "outside_the_job": ("internal", "returned a result outside its job folder", False),
    "exit_mid_job": ("worker_crashed", "model worker exited unexpectedly (exit code 3)", True),
    "garbage_on_the_pipe": ("internal", f"{BUG}: model worker broke the protocol while running"
                                        " jobs: not a JSON line", True),
    "wrong_field_types": ("internal", "bad Done message: job_id: Input should be a valid "
                                      "string", True),
    "unknown_message": ("internal", "broke the protocol while running jobs: unknown message",
                        True),
    "hang": ("timeout", "the job ran longer than 3 s (HUB3D_JOB_TIMEOUT_S) and was stopped",
             True),
    "unrecordable": ("internal", "server-side bug while recording the end of this 'faulty' "
                                 "job (IsADirectoryError", False),
}


def test_every_fault_has_its_expectation() -> None:
    assert set(EXPECTED) == set(FAULTS)


def assert_held(core: Core, *, live: bool = False) -> None:
    """No job `processing` without a worker place holding it (and, once things settled, a live
    worker: between a worker's death and its jobs' ends there is one step of the event loop)."""
    processing = {j.id for j in core.store.by_status(JobStatus.PROCESSING)}
    assert processing <= core.pool.running(), (processing, core.pool.running())
    slots = [s for e in core.pool.models.values() for s in e.slots]
    for job_id in processing if live else ():
        [slot] = [s for s in slots if job_id in s.jobs]
        assert slot.worker is not None and (slot.worker.alive or slot.starting), job_id


def worker_pid(core: Core, job: Job) -> int:
    return int(json.loads((core.store.job_dir(job.id) / "metadata.json").read_text())[
        "worker_pid"])


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_broken_contract_ends_its_job_and_the_model_keeps_serving(
        tmp_path: Path, fault: str) -> None:
    code, words, replaced = EXPECTED[fault]

    async def main() -> None:
        core = await Core(tmp_path, models=(FAULTY,), options={"job_timeout_s": 3}).start()
        try:
            before = await core.wait(core.submit("faulty").id)
            assert before.status is JobStatus.COMPLETED, before
            broken = core.submit("faulty", fault=fault)
            await core.until(lambda: core.job(broken.id).status.is_terminal() or
                             assert_held(core) is not None, 15)
            ended = await core.wait(broken.id, 15)
            assert ended.status is JobStatus.FAILED and ended.result is None, ended
            assert ended.error_code == code, (ended.error_code, ended.error)
            assert words in (ended.error or ""), ended.error
            folder = core.store.job_dir(broken.id)
            if fault != "unrecordable":  # what a failed job leaves: its reason and code
                meta = json.loads((folder / "metadata.json").read_text())
                assert (meta["error_code"], meta["error"]) == (code, ended.error)
            assert_held(core, live=True)
            after = await core.wait(core.submit("faulty").id)
            assert after.status is JobStatus.COMPLETED, after
            assert (worker_pid(core, after) != worker_pid(core, before)) == replaced
            await core.settle()
            assert not core.pool.running()
        finally:
            await core.stop()
    run(main())


def test_a_failing_job_fails_alone_beside_a_good_one_on_the_same_worker(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path, models=(FAULTY,)).start()
        try:
            good = core.submit("faulty", sleep_s=1.0)
            bad = core.submit("faulty", fault="raise", sleep_s=0.2)
            await core.until(lambda: len(core.pool.running()) == 2, 20)  # one worker, two jobs
            [slot] = core.pool.models["faulty"].slots
            assert slot.jobs == {good.id, bad.id} and slot.capacity == 2
            ended = await core.wait(bad.id)
            assert ended.status is JobStatus.FAILED and ended.error_code == "internal"
            assert core.job(good.id).status is JobStatus.PROCESSING  # still running, unharmed
            assert (await core.wait(good.id)).status is JobStatus.COMPLETED
        finally:
            await core.stop()
    run(main())
