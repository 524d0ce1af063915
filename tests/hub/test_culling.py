"""Activity tied to work, against the real idle cullers: jupyterhub-idle-culler (servers) and
the Jupyter server's kernel culler. A job in flight with no laptop traffic keeps the server and
its kernel; an idle server is culled, even with the live panel left open (row 6)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.hub.conftest import FIGURES, NOTEBOOK, SLOW, start_hub
from tests.hub.hub_process import Hub
from tests.hub.kernel_ws import Kernel
from tests.servers import free_port

HUB_CULL_S = 12  # jupyterhub-idle-culler --timeout
KERNEL_CULL_S = 20  # the Jupyter server's cull_idle_timeout, above the hub's: see phase 2
JOB_S = 30  # longer than both


@pytest.fixture(scope="module")
def culling_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = start_hub(
        tmp_path_factory.mktemp("culling-hub"),
        # hub3d tells the hub every 2 s while in use, and counts a request for 4 s
        server_env={"HUB3D_ACTIVITY_INTERVAL_S": "2", "HUB3D_ACTIVITY_WINDOW_S": "4"},
        server_args=[f"--MappingKernelManager.cull_idle_timeout={KERNEL_CULL_S}",
                     "--MappingKernelManager.cull_interval=2"])
    culler = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub_idle_culler", f"--url={hub.api_url}",
         f"--timeout={HUB_CULL_S}", "--cull-every=2"],
        env={"JUPYTERHUB_API_TOKEN": hub.admin_token, "PATH": str(Path(sys.executable).parent)},
        stdout=open(hub.dir / "culler.log", "ab"), stderr=subprocess.STDOUT)
    yield hub
    culler.terminate()
    culler.wait(10)
    hub.stop()


@pytest.mark.timeout(600)
def test_work_keeps_the_server_and_idleness_lets_it_go(culling_hub: Hub, png_b64: str) -> None:
    carol = culling_hub.user("carol").start()
    kernel = Kernel(carol)
    port = free_port()
    kernel.run_notebook(NOTEBOOK, {"MODELS": f"inflate,{SLOW}", "PORT": port, "SAMPLE": False})
    url = carol.proxy_url(port).rstrip("/")
    key = kernel.execute("print(API_KEY)").text.strip()
    headers = {**carol.headers(), "X-API-Key": key}
    try:
        # 1. the tab closed (panel gone), one job submitted, then no traffic at all
        kernel.execute("panel.close()")
        r = requests.post(f"{url}/generate", headers=headers, timeout=30,
                          json={"image": png_b64, "model": "slow", "sleep_s": JOB_S})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        end = time.monotonic() + JOB_S + 3
        while time.monotonic() < end:  # asks the hub only: nothing reaches carol's server
            assert carol.server_ready(), (
                f"culled with a job in flight:\n{culling_hub.log_tail()}")
            time.sleep(1)
        end = time.monotonic() + 60  # a loaded machine: the job may need a little longer
        while (job := requests.get(f"{url}/job/{job_id}", headers=headers, timeout=30).json()
               )["status"] == "processing" and time.monotonic() < end:
            time.sleep(1)
        assert job["status"] == "completed", job  # the kernel (and hub3d in it) survived too
        FIGURES[f"{JOB_S} s job, no traffic, cullers at {HUB_CULL_S}/{KERNEL_CULL_S} s"] = \
            "not culled, job completed"
        # 2. the panel left open, nothing to do: the hub culls before the kernel culler would
        kernel.execute("panel = show_panel(server, public_url=WAYS[0].url, refresh_s=2)")
        idle_since = time.monotonic()
        end = idle_since + HUB_CULL_S + 30
        while carol.model()["servers"].get(""):
            assert time.monotonic() < end, "an idle server with the panel open was not culled"
            time.sleep(1)
        FIGURES["idle (panel open) -> culled after"] = \
            f"{time.monotonic() - idle_since:.0f} s (culler timeout {HUB_CULL_S} s)"
    finally:
        kernel.shutdown()
