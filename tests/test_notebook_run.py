"""Papermill runs sf3d_api_server.ipynb (python3 kernel, MODELS="inflate", CPU only): the server
comes up in the kernel and the notebook's own sample makes a valid GLB."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import trimesh

from tests.notebook_env import REPO, notebook_env
from tests.servers import free_port

NOTEBOOK = REPO / "sf3d_api_server.ipynb"


def test_committed_notebook_is_clean_and_parameterised() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    (params,) = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    for name in ("PORT = 9299", 'MODELS = "sf3d"', 'TUNNEL = "proxy"', "NGROK_AUTHTOKEN = None",
                 "API_KEY = None", "DATA_DIR =", "BLOCK = False"):
        assert name in params.source
    assert code.index(params) == 0


def test_papermill_runs_the_notebook_on_cpu(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out.ipynb"
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-k", "python3",
         "-p", "MODELS", "inflate", "-p", "PORT", str(port), "-p", "DATA_DIR", str(data),
         "-p", "TUNNEL", "none", "-p", "BLOCK", "False", "--no-progress-bar"],
        cwd=tmp_path, env=notebook_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert f"hub3d server running at http://127.0.0.1:{port}" in text
    assert "export HUB3D_API_KEY=" in text and f"ssh -N -L {port}:127.0.0.1:{port}" in text
    assert "inflate:" in text
    glb = data / "samples" / "tshirt.glb"
    scene = trimesh.load(glb, force="scene")
    assert sum(len(g.faces) for g in scene.geometry.values()) > 100
    from tests.gltf_check import assert_valid_glb

    assert_valid_glb(glb)
    # the run's logs and key stay in the data dir
    assert (data / "logs" / f"server-{port}.log").is_file()
    assert (data / "api_key").stat().st_mode & 0o777 == 0o600
    widget_state = json.dumps(nb.metadata.get("widgets", {}))
    assert "run a test image" in widget_state  # the panel was displayed


def test_papermill_parses_the_parameters_cell_without_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """Quotes or `=` in a parameter's comment made papermill warn "Unable to parse line"."""
    import papermill

    with caplog.at_level(logging.WARNING, logger="papermill"):
        params = papermill.inspect_notebook(str(NOTEBOOK))
    assert not [r for r in caplog.records if r.name.startswith("papermill")], caplog.text
    assert {"PORT", "MODELS", "TUNNEL", "NGROK_AUTHTOKEN", "API_KEY", "BLOCK"} <= set(params)
