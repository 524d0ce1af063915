"""`hub3d serve` and its port: a taken one is named with its holder before anything is announced;
`--port 0` serves on a free one and announces that one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.port_holders import holding
from tests.servers import REPO, ServerProcess


def serve(port: int, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub3d", "serve", "--port", str(port), "--models", "inflate",
         "--data-dir", str(data_dir), *extra],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=60)


def assert_refused(run: subprocess.CompletedProcess[str], port: int, holder: str) -> None:
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert f"hub3d serve: port {port} is already in use by {holder}" in out, out
    assert f"--port {port + 1}, or --port 0 for any free one" in out
    assert "hub3d serving" not in out  # nothing announced a server that never ran
    assert "Errno" not in out and "Traceback" not in out


@pytest.mark.parametrize("kind", ["silent", "plain-http"])
def test_a_port_another_program_holds_is_refused_naming_it(kind: str, tmp_path: Path) -> None:
    with holding(kind) as (port, proc):
        t0 = time.monotonic()
        run = serve(port, tmp_path / "data")
        assert time.monotonic() - t0 < 20
        assert proc.poll() is None  # the holder was left alone
    assert_refused(run, port, f"pid {proc.pid} ({sys.executable} -c")


def test_a_port_a_hub3d_server_holds_is_refused_naming_it(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    held = start_server("--models", "inflate")
    run = serve(held.port, tmp_path / "other")
    assert held.proc is not None
    assert_refused(run, held.port, f"pid {held.proc.pid} ({sys.executable} -m hub3d serve")
    assert requests.get(f"{held.url}/health", timeout=5).json()["status"] == "healthy"


def test_port_0_serves_on_a_free_port_and_announces_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub3d", "serve", "--port", "0", "--models", "inflate",
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        while "hub3d serving" not in line:
            line = proc.stderr.readline()
            assert line, "the server ended before announcing its port"
        match = re.search(r"on http://127\.0\.0\.1:(\d+) ", line)
        assert match, line
        port = int(match.group(1))
        assert port > 0
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the announced port never answered"
                time.sleep(0.1)
        assert health["status"] == "healthy" and "inflate" in health["models"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
