"""README's first command, `bash scripts/quickstart.sh`, on a machine where other programs hold
ports: 9299 held by a hub3d server with a key, or by a program that never answers, must not
matter; a PORT asked for and held is reported with its holder and the server log's path.

The script runs as written from a copy of the checkout (its own `.venv`, so the test's own
environment is left alone); that venv sees the test env's dependencies through a `.pth` file,
so the script's pip lines install only hub3d itself."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.gltf_check import assert_valid_glb
from tests.port_holders import holding
from tests.servers import REPO, ServerProcess

DEFAULT_PORT = 9299  # the port the script used to take whatever answered on it
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    (root / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "quickstart.sh", root / "scripts")
    for name in ("hub3d", "client", "samples", "pyproject.toml", "README.md"):
        (root / name).symlink_to(REPO / name)
    # the test env's packages, hub3d and the packaging tools left out
    deps = root / "deps"
    deps.mkdir()
    skip = ("hub3d", "__editable__", "pip", "setuptools", "_distutils_hack", "pkg_resources",
            "distutils-precedence", "__pycache__")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(skip):
            (deps / entry.name).symlink_to(entry)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root / ".venv")], check=True, timeout=180)
    site = subprocess.run([str(root / ".venv/bin/python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "test-deps.pth").write_text(f"{deps}\n")
    return root


def run_quickstart(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    shutil.rmtree(root / "out", ignore_errors=True)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HUB3D_", "PYTHON", "VIRTUAL_ENV")) and k != "PORT"}
    proc = subprocess.Popen(["bash", str(root / "scripts" / "quickstart.sh")], cwd=root.parent,
                            env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and whatever it started
        out, err = proc.communicate()
        pytest.fail(f"quickstart.sh still running after 300 s:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def held_by(kind: str, port: int, tmp_path: Path) -> Iterator[int | None]:
    """`port` held by a hub3d server with an API key or another program; yields its pid."""
    with ExitStack() as stack:
        if kind == "hub3d":
            server = ServerProcess(tmp_path / "other-data", ["--models", "inflate"], port=port,
                                   env={"HUB3D_API_KEY": "not-yours"})
            stack.callback(server.stop)
            server.start()
            assert server.proc is not None
            yield server.proc.pid
        else:
            _, proc = stack.enter_context(holding(kind, port))
            yield proc.pid


def assert_served_its_own_glb(run: subprocess.CompletedProcess[str], root: Path) -> int:
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    match = re.search(r"served by http://127\.0\.0\.1:(\d+) \(log (.+?)\)", run.stdout)
    assert match, out
    log = Path(match.group(2))
    assert log == root / ".hub3d-demo" / "server.log"
    text = log.read_text()
    assert f"hub3d serving inflate on http://127.0.0.1:{match.group(1)} " in text
    assert "hub3d stopped" in text  # the script stopped the server it started
    assert_valid_glb(root / "out" / "tshirt.glb")
    return int(match.group(1))


@pytest.mark.parametrize("kind", ["hub3d", "silent"])
def test_the_first_command_works_while_9299_is_taken(kind: str, checkout: Path,
                                                     tmp_path: Path) -> None:
    with ExitStack() as stack:
        if port_is_free(DEFAULT_PORT):  # else something already holds it, which is the point
            stack.enter_context(held_by(kind, DEFAULT_PORT, tmp_path))
        assert not port_is_free(DEFAULT_PORT)
        run = run_quickstart(checkout)
        port = assert_served_its_own_glb(run, checkout)
    assert port != DEFAULT_PORT


@pytest.mark.parametrize("kind", ["hub3d", "silent", "plain-http"])
def test_a_port_asked_for_and_taken_is_reported_with_its_holder(
        kind: str, checkout: Path, tmp_path: Path) -> None:
    port = int(ServerProcess(tmp_path, []).port)  # a free port, then taken
    with held_by(kind, port, tmp_path) as pid:
        t0 = time.monotonic()
        run = run_quickstart(checkout, PORT=str(port))
        took = time.monotonic() - t0
    err = run.stderr
    assert run.returncode == 1, run.stdout + err
    assert took < 120  # the install, then at once: no wait for a server that is not ours
    assert "error: the hub3d server exited with status 1 before it was ready" in err
    assert f"(PORT={port} was asked for: unset PORT to take any free port)" in err
    assert f"port {port} is already in use by pid {pid} (" in err
    assert f"server log {checkout / '.hub3d-demo' / 'server.log'}" in err
    assert "API key" not in err and not (checkout / "out" / "tshirt.glb").exists()
