"""The laptop client (a venv with only requests) against what a real hub answers: a bad token,
a wrong URL, a stopped server, a closed port, a kernel restart mid-batch, live progress."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.gltf_check import assert_valid_glb
from tests.hub.conftest import FIGURES, Laptop, Served
from tests.hub.hub_process import Hub
from tests.servers import free_port

DATA = Path(__file__).resolve().parents[1] / "data"


def _health(laptop: Laptop, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return laptop.run("--server", url, "--health", "--reconnect", "0", *args, timeout=60)


def test_bad_token_wrong_url_and_closed_port_say_what_is_true(served: Served,
                                                              laptop: Laptop) -> None:
    """Rows 1 and 13: each failure names its cause and what to do, and no HTML."""
    bad = _health(laptop, served.url, "--hub-token", "not-a-token")
    assert bad.returncode == 2 and "did not accept your token" in bad.stderr
    assert f"{served.user.hub.url}/hub/token" in bad.stderr
    lab = _health(laptop, f"{served.user.server_url}lab", "--hub-token", served.user.token)
    assert lab.returncode == 2 and "no hub3d server at" in lab.stderr
    assert "/user/<you>/proxy/<port>/" in lab.stderr and "<html" not in lab.stderr.lower()
    closed = _health(laptop, served.user.proxy_url(free_port()), "--hub-token",
                     served.user.token)
    assert closed.returncode == 2 and "nothing answers" in closed.stderr
    assert "Run All" in closed.stderr and "<html" not in closed.stderr.lower()
    for run in (bad, lab, closed):
        assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr


def test_stopped_server_is_not_a_bad_token(hub: Hub, laptop: Laptop) -> None:
    """Row 1: a stopped (or culled) server redirects into the hub, which answers 424."""
    bob = hub.user("bob")
    url = bob.proxy_url(9299).rstrip("/")
    run = _health(laptop, url, "--hub-token", bob.token)
    assert run.returncode == 2, run.stderr
    assert "not running" in run.stderr and f"{hub.url}/hub/home" in run.stderr
    assert "did not accept your token" not in run.stderr


def _slow_batch(served: Served, laptop: Laptop, out: Path, n: int, sleep_s: float
                ) -> subprocess.Popen[str]:
    images = []
    for i in range(n):
        images.append(out / f"img{i}.png")
        images[-1].write_bytes((DATA / "mug_on_white.png").read_bytes())
    args = [str(laptop.python), str(laptop.cwd / "sf3d_client.py"), *map(str, images),
            "--server", served.url, "--hub-token", served.user.token, "--api-key",
            served.api_key, "--model", "slow", "--param", f"sleep_s={sleep_s}", "--out",
            str(out), "--concurrency", "1", "--reconnect", "240"]
    return subprocess.Popen(args, cwd=laptop.cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(600)  # a restart and a Run All on a loaded 2-core machine
def test_client_resumes_after_a_kernel_restart_and_run_all(served: Served, laptop: Laptop,
                                                           tmp_path: Path) -> None:
    """Rows 3 and 11: the kernel restarts mid-batch; the busy worker ends with it (no orphan
    holding VRAM); Run All brings the server back; the client waited, every job completes,
    none was submitted twice."""
    before = served.kernel.execute(
        "print(len([j for j in server.app.state.store.recent(1000) if j.model == 'slow']))")
    proc = _slow_batch(served, laptop, tmp_path, 3, 4.0)
    end = time.monotonic() + 60
    worker = None
    while worker is None and time.monotonic() < end:
        models = requests.get(f"{served.url}/models", headers=served.headers(), timeout=10)
        busy = [w for m in models.json() if m["name"] == "slow"
                for w in m.get("workers", []) if w.get("state") == "busy"]
        worker = psutil.Process(busy[0]["pid"]) if busy else None
        time.sleep(0.2)
    assert worker is not None, "the batch never started a job"
    served.kernel.restart()
    t_restart = time.monotonic()
    worker.wait(15)  # raises if the worker outlived its kernel
    served.run_all()
    FIGURES["kernel restart -> Run All -> healthy through the proxy"] = \
        f"{time.monotonic() - t_restart:.1f} s"
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    assert "waiting for the server" in err and "resuming" in err
    for i in range(3):
        assert_valid_glb(tmp_path / f"img{i}.glb")
    after = served.kernel.execute(
        "print(len([j for j in server.app.state.store.recent(1000) if j.model == 'slow']))")
    assert int(after.text) - int(before.text) == 3  # the retried POSTs made no second job
    FIGURES["client across kernel restart + Run All"] = "3/3 jobs ok, 0 duplicated"


def test_live_progress_through_the_proxy(served: Served, laptop: Laptop) -> None:
    """Row 4: jupyter-server-proxy streams only for `Accept: text/event-stream`; otherwise a
    40 s job printed nothing for 40 s. Polling is slowed right down, so only the event stream
    can bring the stage lines early."""
    code = f"""
import time, sf3d_client as c
cl = c.SF3DClient({served.url!r}, api_key={served.api_key!r}, hub_token={served.user.token!r},
                  poll_interval=(60.0, 60.0))
job = cl.submit({str(DATA / 'mug_on_white.png')!r}, model="slow", sleep_s=6)
t0, seen = time.monotonic(), []
cl.wait(job, progress=lambda j: seen.append((round(time.monotonic() - t0, 2), j["status"],
                                             j.get("stage"))))
print(seen)
"""
    run = subprocess.run([str(laptop.python), "-c", code], cwd=laptop.cwd, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = eval(run.stdout.strip().splitlines()[-1])  # noqa: S307 — our own repr
    assert any(stage == "inference" for _, _, stage in seen), seen
    first_inference = min(t for t, _, stage in seen if stage == "inference")
    assert first_inference < 5.0, seen  # while the 6 s job still ran, not at its end
    FIGURES["first progress line through the proxy (6 s job)"] = f"{seen[0][0]:.2f} s"
    assert seen[-1][1] == "completed"


