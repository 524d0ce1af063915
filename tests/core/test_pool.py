"""The worker pool's slots: an explicit state, each change checked against where it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub3d.models.catalog import Catalog
from hub3d.workers.pool import SlotState, WorkerPool
from tests.core.harness import Core, run


def test_a_slot_goes_stopped_loading_ready_stopped_and_refuses_a_wrong_move(
        tmp_path: Path) -> None:
    async def main() -> None:
        core = Core(tmp_path)
        settings = core.settings()
        pool = WorkerPool(settings, catalog=Catalog.build(settings.models, settings.data_dir),
                          vram_probe=lambda d: None, gpu_lister=list)
        try:
            lease = pool.acquire("slow", "job-a")
            assert lease is not None and lease.slot.state is SlotState.STOPPED
            assert pool.acquire("slow", "job-b") is None  # one job per worker here
            seen: list[str] = []
            await pool.ensure_started(lease, lambda stage, msg: seen.append(stage))
            slot = lease.slot
            assert slot.state is SlotState.READY and slot.ready and slot.jobs == {"job-a"}
            assert pool.describe("slow")["workers"][0]["state"] == "busy"
            await pool.release(lease)
            assert slot.state is SlotState.READY and slot.job_id is None
            assert pool.describe("slow")["workers"][0]["state"] == "ready"
            with pytest.raises(RuntimeError, match="cannot go ready → ready"):
                slot.loaded(True)  # a second "loaded" is a bug, not a no-op
            assert await pool.unload("slow") == 1
            assert slot.state is SlotState.STOPPED and slot.worker is None
            assert pool.describe("slow")["workers"][0]["state"] == "stopped"
        finally:
            await pool.shutdown()
    run(main())


def test_a_worker_that_dies_while_ready_leaves_a_slot_that_is_not_ready(tmp_path: Path) -> None:
    async def main() -> None:
        core = await Core(tmp_path).start()
        try:
            await core.wait(core.submit().id)
            slot = core.pool.models["slow"].slots[0]
            assert slot.state is SlotState.READY and slot.worker is not None
            slot.worker.kill()
            await core.until(lambda: not slot.ready, 10)
            assert slot.public_state == "stopped"
            assert (await core.wait(core.submit().id)).status.value == "completed"
        finally:
            await core.stop()
    run(main())
