"""Run All in the user's kernel on a real hub: healthy through /user/<name>/proxy/<port>/, and
the client from a requests-only laptop venv makes a valid GLB there."""

from __future__ import annotations

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
