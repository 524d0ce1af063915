"""Row 10: the untouched notebook (MODELS="sf3d") on a server where SF3D cannot run (no GPU, no
sf3d package in the kernel's env): the start cell says so and what to use, and the sample cell
fails with one clear line rather than a traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.hub.conftest import NOTEBOOK
from tests.hub.hub_process import HubUser
from tests.hub.kernel_ws import Kernel
from tests.servers import free_port


def test_start_cell_warns_and_sample_fails_in_one_line(hub_user: HubUser, tmp_path: Path) -> None:
    assert importlib.util.find_spec("sf3d") is None  # the case itself: SF3D's code is absent
    kernel = Kernel(hub_user.start())
    try:
        cells = kernel.run_notebook(NOTEBOOK, {"MODELS": "sf3d", "PORT": free_port(),
                                               "DATA_DIR": str(tmp_path / "data")},
                                    timeout=120, check=False)
        start = next(c for c in cells if "start_server(" in c.code)
        assert start.error is None, start.text
        warnings = [ln for ln in start.text.splitlines() if ln.startswith("WARNING:")]
        assert any("sf3d" in ln and "MODELS='inflate'" in ln for ln in warnings), start.text
        sample = cells[-1]  # Run All stops at the first error
        assert "run_sample(" in sample.code, [c.code[:40] for c in cells]
        assert sample.error is not None and sample.error.startswith("SampleFailed: "), sample
        lines = sample.text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("SampleFailed: "), sample.text
        assert "Traceback" not in sample.text and "still running" in lines[0]
    finally:
        kernel.execute("if 'server' in globals(): server.stop()", check=False, timeout=60)
        kernel.shutdown()
