"""The data dir runs out of space: accepted jobs end completed or failed with a stated reason,
never stuck in 'processing', never a truncated file served; the server recovers once space
comes back.

The data dir is a 8 MB tmpfs (`mount -t tmpfs`, needs root); the tests skip where mounting is
refused. A filler file takes the last free byte.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trimesh

from tests.servers import ServerProcess, wait_done

SLOW = "slow=tests.backends.testing:SlowBackend"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); run as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def server(small_disk: Path) -> Iterator[ServerProcess]:
    # The server log goes beside the mount (data_dir.parent), so it survives the full disk.
    srv = ServerProcess(small_disk, ["--models", SLOW, "--max-queue-size", "20"])
    yield srv.start()
    srv.stop()


@contextlib.contextmanager
def disk_filled(mount: Path) -> Iterator[None]:
    """Take every free byte of the mount; give it all back on exit."""
    filler = mount / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    assert os.statvfs(mount).f_bavail == 0
    try:
        yield
    finally:
        filler.unlink()


def submit(url: str, png_b64: str, **params: object) -> requests.Response:
    return requests.post(f"{url}/generate", json={"image": png_b64, "model": "slow", **params},
                         timeout=30)


def assert_served_whole(url: str, job_id: str) -> None:
    """A completed job's download is a whole GLB: its header length matches, trimesh loads it."""
    body = requests.get(f"{url}/job/{job_id}/download", timeout=10).content
    assert body[:4] == b"glTF" and int.from_bytes(body[8:12], "little") == len(body)
    trimesh.load(io.BytesIO(body), file_type="glb")


def wait_stage(url: str, job_id: str, stage: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while requests.get(f"{url}/job/{job_id}").json()["stage"] != stage:
        assert time.monotonic() < end, f"job {job_id} never reached {stage}"
        time.sleep(0.05)


def test_space_comes_back_and_the_server_recovers(server: ServerProcess, small_disk: Path,
                                                  png_b64: str) -> None:
    before = submit(server.url, png_b64).json()["job_id"]
    assert wait_done(server.url, before)["status"] == "completed"
    with disk_filled(small_disk):
        r = submit(server.url, png_b64)
        assert r.status_code != 202 or r.json()["job_id"]  # refused, or accepted and tracked
        accepted = [r.json()["job_id"]] if r.status_code == 202 else []
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
        assert_served_whole(server.url, before)  # results written earlier stay served
    # Space is back: the server is healthy, new work completes, nothing was left half-done.
    assert requests.get(f"{server.url}/health").json()["status"] == "healthy"
    after = submit(server.url, png_b64).json()["job_id"]
    for jid in [*accepted, after]:
        job = wait_done(server.url, jid)
        assert job["status"] in ("completed", "failed"), job
        if job["status"] == "completed":
            assert_served_whole(server.url, jid)
        else:
            assert job["error"], job
    assert wait_done(server.url, after)["status"] == "completed"
    leftovers = [p.name for p in (small_disk / "jobs").rglob(".*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_submit_on_a_full_disk_is_refused_with_a_clear_error(
        server: ServerProcess, small_disk: Path, png_b64: str) -> None:
    with disk_filled(small_disk):
        r = submit(server.url, png_b64)
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
        assert "space" in r.json()["error"]["message"].lower()
        assert "retry-after" in r.headers
        assert sorted(p.name for p in (small_disk / "jobs").iterdir()) == []


def test_job_running_when_the_disk_fills_fails_with_a_reason(
        server: ServerProcess, small_disk: Path, png_b64: str) -> None:
    r = submit(server.url, png_b64, sleep_s=1.5)
    jid = r.json()["job_id"]
    wait_stage(server.url, jid, "inference")
    with disk_filled(small_disk):
        time.sleep(3)  # the worker's result write fails while the disk is full
    job = wait_done(server.url, jid, timeout=20)
    assert job["status"] == "failed", job
    assert "space" in job["error"].lower(), job
    download = requests.get(f"{server.url}/job/{jid}/download")
    assert download.status_code == 409  # never a truncated file
    assert not (small_disk / "jobs" / jid / "result.glb").exists()
