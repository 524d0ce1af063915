"""hub3d served on a real Ray cluster (a head and a second node on this machine), behind the
same API: the control plane is unchanged, each model runs in an actor per node (marker `ray`).

Jobs spread over both nodes and give the bytes a local server gives; cancel, failure reasons
and codes are as with the local pool; a node lost mid-job sends its job back to the queue once,
and it completes on the head; the client and the page work against it as against any server.
"""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client_helpers import CLIENT_PY, cli_env
from tests.conftest import REPO, make_png
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess, wait_done

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]
MODELS = "inflate,slow=tests.backends.testing:SlowBackend"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Head + node n1, two logical CPUs each (one per model's actor: inflate and slow)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed: pip install -e '.[test]'")
    from tests.ray_cluster import head_and_n1

    with head_and_n1(tmp_path_factory.mktemp("ray"), num_cpus=2) as made:
        yield made


@pytest.fixture(scope="module")
def server(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("ray-serve") / "data",
                        ["--models", MODELS, "--ray-address", cluster.address,
                         "--max-queue-size", "50"], env=cluster.client_env)
    srv.start(120)
    yield srv
    srv.stop()


def submit(url: str, png_b64: str, **params: Any) -> str:
    r = requests.post(f"{url}/generate", json={"image": png_b64, **params}, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def node_of(cluster: Any, device: str) -> str:
    """The cluster node a slot's device label names (cpu@<ip>/<node id prefix>)."""
    prefix = device.rpartition("/")[2]
    return next(n.name for n in cluster.nodes if (n.node_id or "").startswith(prefix))


def test_each_model_has_a_worker_on_each_node_and_jobs_spread_over_them(
        server: ServerProcess, cluster: Any, png_b64: str) -> None:
    models = {m["name"]: m for m in requests.get(f"{server.url}/models", timeout=30).json()}
    devices = models["inflate"]["devices"]
    assert sorted(node_of(cluster, d) for d in devices) == ["head", "n1"], devices
    jobs = [submit(server.url, png_b64, model="slow", sleep_s=1.0) for _ in range(4)]
    done = [wait_done(server.url, j, 120) for j in jobs]
    assert {j["status"] for j in done} == {"completed"}, done
    assert {node_of(cluster, j["device"]) for j in done} == {"head", "n1"}, done
    workers = requests.get(f"{server.url}/models", timeout=10).json()
    slow = next(m for m in workers if m["name"] == "slow")
    assert all(w["pid"] for w in slow["workers"]) and slow["state"] == "ready"
    health = requests.get(f"{server.url}/health", timeout=10).json()
    assert health["status"] == "healthy" and health["queue"]["slots"] == 4
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    up = [line for line in metrics.splitlines()
          if line.startswith('hub3d_worker_up{') and 'model="slow"' in line]
    assert len(up) == 2 and all(line.endswith(" 1.0") for line in up), up  # a worker a node


def test_the_same_client_batch_gives_the_same_files_as_a_local_server(
        server: ServerProcess, start_server: Any, tmp_path: Path) -> None:
    local = start_server("--models", "inflate")
    folder = tmp_path / "in"
    folder.mkdir()
    for i, colour in enumerate([(200, 40, 40), (40, 160, 40), (40, 40, 200)]):
        (folder / f"p{i}.png").write_bytes(make_png(96 + 16 * i, colour))
    outs = {}
    for name, srv in (("ray", server), ("local", local)):
        outs[name] = tmp_path / name
        r = subprocess.run([sys.executable, str(CLIENT_PY), str(folder), "--server", srv.url,
                            "--model", "inflate", "--out", str(outs[name]), "--concurrency",
                            "3"], capture_output=True, text=True, env=cli_env(), timeout=180,
                           cwd=REPO)
        assert r.returncode == 0, r.stdout + r.stderr
    for i in range(3):
        glb = (outs["ray"] / f"p{i}.glb").read_bytes()
        assert glb == (outs["local"] / f"p{i}.glb").read_bytes()
        assert_valid_glb(glb)
    usdz = requests.get(f"{server.url}/jobs?limit=1", timeout=10).json()[0]["job_id"]
    r = requests.get(f"{server.url}/job/{usdz}/download?format=usdz", timeout=60)
    assert r.ok and r.headers["content-type"] == "model/vnd.usdz+zip"


def test_a_failure_keeps_its_reason_and_code_and_a_cancel_stops_its_job(
        server: ServerProcess, png_b64: str) -> None:
    failed = wait_done(server.url, submit(server.url, png_b64, model="slow", fail="error"), 60)
    assert (failed["status"], failed["error_code"]) == ("failed", "model_error")
    assert failed["error"] == "the test backend was asked to fail"
    running = submit(server.url, png_b64, model="slow", sleep_s=60)
    end = time.monotonic() + 60
    while requests.get(f"{server.url}/job/{running}", timeout=5).json()["stage"] != "inference":
        assert time.monotonic() < end
        time.sleep(0.05)
    canceled = requests.delete(f"{server.url}/job/{running}", timeout=10).json()
    assert (canceled["status"], canceled["error_code"]) == ("canceled", "canceled")
    after = wait_done(server.url, submit(server.url, png_b64, model="slow"), 120)
    assert after["status"] == "completed", after
    assert requests.get(f"{server.url}/job/{running}", timeout=5).json()["status"] == "canceled"


def test_the_page_runs_a_job_on_the_cluster(server: ServerProcess, browser: Any) -> None:
    from tests.browser import drop_files, wait_for

    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*model-viewer*"]})
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready"), 30, "page")
    drop_files(browser, "drop", [("photo.png", make_png(128), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-status=completed]')"), 120, "job completed")
    labels = [a.text for a in browser.find_elements("css selector", ".job .downloads a")]
    assert labels[0] == "GLB" and "USDZ" in labels


def test_a_node_lost_mid_job_sends_its_jobs_back_once_and_they_complete_on_the_head(
        server: ServerProcess, cluster: Any, png_b64: str) -> None:
    """The second node's every process SIGKILLed while it runs a job: the job goes back to the
    queue (attempt 2) and completes on the head; the lost node's place takes no more jobs."""
    with ThreadPoolExecutor(2) as pool:
        jobs = list(pool.map(lambda _: submit(server.url, png_b64, model="slow", sleep_s=6),
                             range(2)))
    end = time.monotonic() + 120
    on_n1 = None
    while on_n1 is None:
        assert time.monotonic() < end, "no job ran on n1"
        views = [requests.get(f"{server.url}/job/{j}", timeout=5).json() for j in jobs]
        on_n1 = next((v for v in views if v["stage"] == "inference" and v["device"]
                      and node_of(cluster, v["device"]) == "n1"), None)
        time.sleep(0.05)
    cluster.node("n1").kill()
    ends = [wait_done(server.url, j, 180) for j in jobs]
    assert {e["status"] for e in ends} == {"completed"}, ends
    moved = next(e for e in ends if e["job_id"] == on_n1["job_id"])
    assert node_of(cluster, moved["device"]) == "head", moved
    meta = requests.get(f"{server.url}/job/{moved['job_id']}/metadata", timeout=10).json()
    assert meta["device"] == moved["device"]
    states = {w["device"]: w["state"] for m in requests.get(f"{server.url}/models",
                                                            timeout=10).json()
              if m["name"] == "slow" for w in m["workers"]}
    assert [s for d, s in states.items() if node_of(cluster, d) == "n1"] == ["lost"], states
    png = base64.b64encode(make_png(64)).decode()
    assert wait_done(server.url, submit(server.url, png, model="slow"), 60)["status"] == \
        "completed"
