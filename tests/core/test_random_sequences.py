"""A seeded, bounded random sequence of submit / cancel / crash / restart against the real core,
with the invariants checked after every step."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from hub3d.jobs.record import JobStatus
from tests.core.harness import Core, run

STEPS = 40


def check_now(core: Core, submitted: set[str], canceled: set[str]) -> None:
    """What holds at every instant."""
    counts = core.store.counts()
    assert sum(counts.values()) == len(submitted), counts  # no job lost, none invented
    assert counts["processing"] <= core.pool.capacity(), counts
    # no job in "processing" without a worker place working on it
    processing = {j.id for j in core.store.by_status(JobStatus.PROCESSING)}
    assert processing <= core.pool.running(), (processing, core.pool.running())
    for job_id in canceled:  # a cancel is final: nothing turns it back
        job = core.job(job_id)
        assert job.status is JobStatus.CANCELED and job.result is None, job


def check_settled(core: Core, submitted: set[str]) -> None:
    """What holds once the queue has drained: every job ended, each end consistent."""
    for job_id in submitted:
        job = core.job(job_id)
        assert job.status.is_terminal(), job  # nothing stuck in processing or queued
        result = core.store.job_dir(job_id) / "result.glb"
        if job.status is JobStatus.COMPLETED:
            assert job.result == "result.glb" and result.is_file(), job
            assert (core.store.job_dir(job_id) / "metadata.json").is_file()
        else:
            assert job.result is None and job.finished_at is not None, job
            assert job.error or job.status is JobStatus.CANCELED, job
    assert not core.pool.running(), core.pool.running()


async def crash_a_worker(core: Core, rng: random.Random) -> bool:
    workers = [s.worker for e in core.pool.models.values() for s in e.slots
               if s.worker is not None and s.worker.alive and s.worker.pid]
    if not workers:
        return False
    pid = rng.choice(workers).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return True


@pytest.mark.parametrize("seed", [1, 2])
def test_random_submit_cancel_crash_restart(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    done: Counter[str] = Counter()

    async def main() -> None:
        core = await Core(tmp_path, slots=2).start()
        submitted: set[str] = set()
        canceled: set[str] = set()
        try:
            for _ in range(STEPS):
                action = rng.choices(["submit", "cancel", "crash", "restart", "wait"],
                                     weights=[6, 2, 1, 1, 2])[0]
                if action == "submit":
                    fail = rng.choices(["none", "error", "kill"], weights=[8, 1, 1])[0]
                    job = core.submit(sleep_s=rng.choice([0.0, 0.05, 0.3, 1.0]), fail=fail)
                    submitted.add(job.id)
                elif action == "cancel":
                    live = [j for j in submitted if not core.job(j).status.is_terminal()]
                    if live:
                        job_id = rng.choice(sorted(live))
                        core.sched.cancel(job_id)
                        canceled.add(job_id)
                elif action == "crash" and not await crash_a_worker(core, rng):
                    action = "wait"
                elif action == "restart":
                    await core.restart()
                if action == "wait":
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                else:
                    await asyncio.sleep(0.02)
                done[action] += 1
                check_now(core, submitted, canceled)
            await core.settle(timeout=120)
            check_now(core, submitted, canceled)
            check_settled(core, submitted)
            await core.restart()  # and a restart on a drained queue changes nothing
            check_settled(core, submitted)
        finally:
            await core.stop()

    run(main())
    assert done["submit"] >= 5, done  # the sequence really exercised the core
