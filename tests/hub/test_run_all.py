"""Run All in the user's kernel on a real hub: healthy through /user/<name>/proxy/<port>/, and
the client from a requests-only laptop venv makes a valid GLB there."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import requests

from tests.gltf_check import assert_valid_glb
from tests.hub.conftest import Laptop, Served


def test_run_all_serves_through_the_hub_proxy(served: Served) -> None:
    r = requests.get(f"{served.url}/health", headers=served.headers(), timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "healthy", r.text
    assert "inflate:" in served.text  # the sample cell made its GLB


def test_laptop_client_makes_a_glb_through_the_proxy(served: Served, laptop: Laptop,
                                                     tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[1] / "data" / "mug_on_white.png"
    run = laptop.run(str(src), "--server", served.url, "--hub-token", served.user.token,
                     "--api-key", served.api_key, "--out", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    assert_valid_glb(tmp_path / "mug_on_white.glb")


def _printed_proxy_url(served: Served) -> str:
    (line,) = [ln for ln in served.text.splitlines() if ln.startswith("== hub proxy: ")]
    return line.split(": ", 1)[1].strip()


def test_printed_url_names_the_hub_once_and_works(served: Served) -> None:
    """Row 2: with public_url set the notebook printed …/user/<n>/user/<n>/proxy/… (404)."""
    url = _printed_proxy_url(served)
    assert url == served.url + "/"
    r = requests.get(f"{url}health", headers=served.headers(), timeout=10)
    assert r.ok and r.json()["status"] == "healthy"


def test_returned_urls_carry_the_proxy_prefix(served: Served, png_b64: str) -> None:
    """Row 8: status_url, download_url and "poll …" must work as given, through the proxy."""
    prefix = f"/user/{served.user.name}/proxy/{served.port}"
    r = requests.post(f"{served.url}/generate", json={"image": png_b64}, headers=served.headers(),
                      timeout=30)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status_url"].startswith(f"{prefix}/job/") and prefix in body["message"]
    hub = served.user.hub.url
    job = requests.get(hub + body["status_url"], headers=served.headers(), timeout=10).json()
    while job["status"] not in ("completed", "failed"):
        job = requests.get(hub + body["status_url"], headers=served.headers(), timeout=10).json()
    assert job["status"] == "completed" and job["download_url"].startswith(prefix)
    glb = requests.get(hub + job["download_url"], headers=served.headers(), timeout=30)
    assert glb.ok and glb.content[:4] == b"glTF"


def test_docs_behind_the_proxy_have_an_authorize_button(served: Served) -> None:
    """Row 7: /docs loads its spec through the prefix, and the spec declares X-API-Key."""
    docs = requests.get(f"{served.url}/docs", headers=served.user.headers(), timeout=10).text
    assert f"/user/{served.user.name}/proxy/{served.port}/openapi.json" in docs
    spec = requests.get(f"{served.url}/openapi.json", headers=served.user.headers(),
                        timeout=10).json()
    schemes = spec["components"]["securitySchemes"].values()
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= \
        next(iter(schemes)).items()


def test_no_false_proxy_warning_when_the_server_runs_from_a_venv(served: Served) -> None:
    """Row 5: the server's Python is a venv's; its symlink resolves to a Python without
    jupyter-server-proxy, which made doctor and this cell say it was missing."""
    assert (Path(sys.executable).parent.parent / "pyvenv.cfg").is_file()  # the case itself
    assert "jupyter-server-proxy is not installed" not in served.text
    assert "jupyter-server-proxy" not in served.kernel.execute(
        "from hub3d.notebook.urls import server_proxy_check; print(server_proxy_check())").text


def test_terminal_command_works_in_a_login_shell(served: Served, tmp_path: Path) -> None:
    """Row 12: a hub terminal is a login shell, whose PATH has no `hub3d`: the printed command
    names the kernel's Python."""
    (line,) = [ln.strip() for ln in served.text.splitlines() if " -m hub3d restart " in ln]
    python = shlex.split(line)[0]
    run = subprocess.run(["env", "-i", f"HOME={tmp_path}", "bash", "-lc",
                          f"{shlex.quote(python)} -m hub3d status --data-dir {tmp_path}"],
                         capture_output=True, text=True, timeout=60)
    assert "no headless run recorded" in run.stdout, run.stdout + run.stderr


def test_ssh_line_names_a_real_host(served: Served) -> None:
    """Row 13: the SSH tunnel line said user@localhost."""
    (line,) = [ln for ln in served.text.splitlines() if "ssh -N -L" in ln]
    assert "@localhost" not in line
