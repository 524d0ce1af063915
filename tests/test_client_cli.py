"""`python client/sf3d_client.py …` as a user runs it, against real servers on 127.0.0.1."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.client_helpers import (
    CLIENT_PY,
    REPO,
    cli_env,
    hub_login_standin,
    models,
    sample_png,
)
from tests.conftest import make_png
from tests.local_http import serving, slow_tunnel
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    proc = ServerProcess(tmp / "data", ["--models", models()]).start()
    yield proc
    proc.stop()


def run_cli(*args: str, python: str = sys.executable, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(CLIENT_PY), *args], capture_output=True, text=True,
                          env=cli_env(**env), timeout=timeout, cwd=REPO)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(sample_png())
    (folder / "b.png").write_bytes(make_png(80, (40, 160, 40)))
    (folder / "bad.png").write_bytes(os.urandom(24))
    (folder / "notes.txt").write_text("not an image, not picked up")
    return folder


def test_batch_with_a_corrupt_image_then_resume(server: ServerProcess, images: Path,
                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_cli(str(images), "--server", server.url, "--out", str(out), "--concurrency", "2")
    assert r.returncode == 3, r.stderr  # a refused image: send another one
    rows = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[1:-1]}
    assert rows == {"a.png": "ok", "b.png": "ok", "bad.png": "failed"}
    assert "not an image" in r.stdout or "could not" in r.stdout  # the server's reason
    assert "3 inputs: 2 ok, 1 failed, 0 skipped" in r.stdout
    assert "3/3" in r.stderr  # tqdm's bar over the batch
    for stem in ("a", "b"):
        assert (out / f"{stem}.glb").read_bytes()[:4] == b"glTF"
        meta = json.loads((out / f"{stem}.metadata.json").read_text())
        assert meta["client"]["server_url"] == server.url
    assert not (out / "bad.glb").exists()

    mtime = (out / "a.glb").stat().st_mtime_ns
    (images / "bad.png").unlink()
    r = run_cli(str(images), "--server", server.url, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 inputs: 0 ok, 0 failed, 2 skipped" in r.stdout
    assert (out / "a.glb").stat().st_mtime_ns == mtime


def test_health_table(server: ServerProcess) -> None:
    r = run_cli("--health", "--server", server.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("status        healthy")
    assert any(line.startswith("inflate ") for line in r.stdout.splitlines())
    assert "queue" in r.stdout


def test_settings_from_env_and_params(server: ServerProcess, images: Path,
                                      tmp_path: Path) -> None:
    r = run_cli(str(images / "a.png"), "--out", str(tmp_path), "--seed", "3", "--no-texture",
                "--texture-resolution", "512", "--sync", HUB3D_SERVER=server.url)
    assert r.returncode == 0, r.stderr
    params = json.loads((tmp_path / "a.metadata.json").read_text())["params"]
    assert (params["seed"], params["with_texture"], params["texture_resolution"]) == (3, False, 512)


def test_run_dir_merges_pipeline_metadata(server: ServerProcess, images: Path,
                                          tmp_path: Path) -> None:
    run = tmp_path / "run-001"
    run.mkdir()
    (run / "metadata.json").write_text(json.dumps({"pipeline": "demo", "steps": ["segment"]}))
    r = run_cli(str(images / "b.png"), "--server", server.url, "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    assert (run / "mesh.glb").read_bytes()[:4] == b"glTF"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["pipeline"] == "demo" and meta["steps"] == ["segment"]
    assert meta["mesh"]["file"] == "mesh.glb" and meta["mesh"]["client"]["input"] == "b.png"


def test_usage_errors_are_clear(images: Path, server: ServerProcess) -> None:
    r = run_cli(str(images / "a.png"))
    assert r.returncode == 2 and "--server URL is required" in r.stderr
    r = run_cli(str(images / "nope.png"), "--server", server.url)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_cli(str(images), "--server", server.url, "--run-dir", "x")
    assert r.returncode == 2 and "--run-dir takes exactly one image" in r.stderr


def test_wrong_api_key(start_server: Callable[..., ServerProcess], images: Path) -> None:
    srv = start_server("--models", models(), env={"HUB3D_API_KEY": "right"})
    r = run_cli(str(images / "a.png"), "--server", srv.url, HUB3D_API_KEY="wrong")
    assert r.returncode == 2
    assert "refused the API key" in r.stderr and "--api-key" in r.stderr


def test_hub_login_redirect(images: Path) -> None:
    with hub_login_standin() as hub:
        r = run_cli(str(images / "a.png"), "--server", f"{hub}/user/me/proxy/9299")
    assert r.returncode == 2
    assert f"the hub did not accept your token: make one at {hub}/hub/token" in r.stderr
    assert "JUPYTERHUB_TOKEN" in r.stderr  # none was sent: say where it goes


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_runs_with_only_stdlib_and_requests(server: ServerProcess, images: Path,
                                            tmp_path: Path) -> None:
    """A bare venv (no system packages) with `pip install requests`: help, import, a job."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    py = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "requests"], check=True, timeout=90)
    r = run_cli("--help", python=py)
    assert r.returncode == 0 and "--hub-token" in r.stdout, r.stderr
    imp = subprocess.run([py, "-c", "import sf3d_client, sys; "
                          "assert 'numpy' not in sys.modules and 'PIL' not in sys.modules"],
                         cwd=CLIENT_PY.parent, capture_output=True, text=True, timeout=30)
    assert imp.returncode == 0, imp.stderr
    r = run_cli(str(images / "a.png"), "--server", server.url, "--out", str(tmp_path / "o"),
                python=py)
    assert r.returncode == 0, r.stderr
    assert "[1/1] a.png: ok" in r.stderr  # no tqdm here: plain progress lines
    assert (tmp_path / "o" / "a.glb").read_bytes()[:4] == b"glTF"


def test_ctrl_c_cancels_the_running_jobs(start_server: Callable[..., ServerProcess],
                                         images: Path, tmp_path: Path) -> None:
    srv = start_server("--models", models(with_slow=True))

    def once_queued(proc: subprocess.Popen[str]) -> None:
        _until(lambda: bool(requests.get(f"{srv.url}/queue").json()["order"]))
        proc.send_signal(signal.SIGINT)

    status, err = _interrupt_cli(srv.url, images, tmp_path, once_queued)
    assert status == 130 and "canceled 1 running job" in err, err
    jobs = requests.get(f"{srv.url}/queue").json()
    assert jobs["queued"] == 0 and jobs["processing"] == 0


def _as_at_a_terminal() -> None:
    # A run started in the background by a shell without job control inherits SIGINT ignored;
    # the user this plays has the client in the foreground of a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_cli(server: str, images: Path, out: Path,
                   when: Callable[[subprocess.Popen[str]], None]) -> tuple[int, str]:
    """Start a one-image CLI run of a 60 s job; once `when(proc)` returns, Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, str(CLIENT_PY), str(images / "a.png"), "--server", server,
         "--model", "slow", "--param", "sleep_s=60", "--out", str(out), "--quiet"],
        env=cli_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_as_at_a_terminal)
    try:
        when(proc)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    return proc.returncode, err


def _until(check: Callable[[], bool], within: float = 30) -> None:
    end = time.monotonic() + within
    while not check():
        assert time.monotonic() < end
        time.sleep(0.05)


def test_ctrl_c_while_the_submission_is_on_its_way(start_server: Callable[..., ServerProcess],
                                                   images: Path, tmp_path: Path) -> None:
    # Through a slow tunnel the server queues the job seconds before the client hears its id:
    # a Ctrl-C then must still cancel it, not leave it running for nobody.
    srv = start_server("--models", models(with_slow=True))

    def queued_but_unanswered(proc: subprocess.Popen[str]) -> None:
        _until(lambda: bool(requests.get(f"{srv.url}/queue").json()["order"]))
        proc.send_signal(signal.SIGINT)

    with serving(slow_tunnel(srv.url, answer_delay_s=3.0)) as tunnel:
        status, err = _interrupt_cli(tunnel, images, tmp_path, queued_but_unanswered)
    assert status == 130 and "canceled 1 running job" in err, err
    jobs = requests.get(f"{srv.url}/queue").json()
    assert jobs["queued"] == 0 and jobs["processing"] == 0, jobs


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_ctrl_c_taken_by_a_request_thread(start_server: Callable[..., ServerProcess],
                                          images: Path, tmp_path: Path) -> None:
    # The kernel may hand a terminal's SIGINT to any thread of the client; Python acts on it
    # only when the main thread runs, so the main thread must not sleep until the jobs end.
    srv = start_server("--models", models(with_slow=True))

    def to_a_request_thread(proc: subprocess.Popen[str]) -> None:
        _until(lambda: any(j["stage"] == "inference"
                           for j in requests.get(f"{srv.url}/queue").json()["order"]))
        tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert tids, "the client runs its requests in threads"
        assert ctypes.CDLL(None, use_errno=True).tgkill(proc.pid, tids[0], signal.SIGINT) == 0

    status, err = _interrupt_cli(srv.url, images, tmp_path, to_a_request_thread)
    assert status == 130 and "canceled 1 running job" in err, err
