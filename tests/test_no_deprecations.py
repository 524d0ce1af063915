"""hub3d's own install and start say nothing deprecated: `pip install -e .` into a fresh venv,
and `hub3d serve` behind a proxy prefix with every warning turned into an error (workers too)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from tests.servers import REPO, ServerProcess, free_port, wait_done


def test_the_editable_install_warns_of_no_deprecation(tmp_path: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=180)
    # -v: pip shows the build backend's own output, where setuptools prints its warnings
    run = subprocess.run([str(tmp_path / "venv/bin/python"), "-m", "pip", "install", "-v",
                          "--no-deps", "--disable-pip-version-check", "-e", str(REPO)],
                         capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "Successfully installed hub3d" in out
    deprecated = [line for line in out.splitlines() if re.search("deprecat", line, re.I)]
    assert not deprecated, "\n".join(deprecated)


def test_serve_behind_a_prefix_with_warnings_as_errors(
        start_server: Callable[..., ServerProcess], png_b64: str) -> None:
    port = free_port()
    root = f"/user/ada/proxy/{port}"
    server = start_server("--models", "inflate", "--root-path", root, port=port,
                          env={"PYTHONWARNINGS": "error"})
    # the hub proxy strips the prefix before forwarding; every URL handed out carries it back
    assert f"url: '{root}/openapi.json'" in requests.get(f"{server.url}/docs", timeout=10).text
    spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert spec["servers"] == [{"url": root}]
    job = requests.post(f"{server.url}/generate", json={"image": png_b64}, timeout=30).json()
    assert job["status_url"] == f"{root}/job/{job['job_id']}"
    done = wait_done(server.url, job["job_id"])  # the worker ran with warnings as errors too
    assert done["status"] == "completed", done
    assert done["download_url"] == f"{root}/job/{job['job_id']}/download"
    page = requests.get(f"{server.url}/", timeout=10)
    assert page.ok and 'href="static/page.css"' in page.text  # relative: under the prefix
    assert requests.get(f"{server.url}/static/page.css", timeout=10).ok
    assert server.stop() == 0
    log = server.log()
    assert "Warning" not in log and "Traceback" not in log, log
