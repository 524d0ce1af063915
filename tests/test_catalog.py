"""The model catalog: one rule for where a model's files are and which Python runs it, read by
the pool, the request checks, /models and the job metadata alike; and a backend from a package
of its own, served with no hub3d file touched."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from hub3d.models.catalog import Catalog
from hub3d.models.files import FileSource, resolve_files
from hub3d.models.sam3d_weights import WEIGHTS as SAM3D
from hub3d.models.sf3d import WEIGHTS as SF3D
from tests.gltf_check import assert_valid_glb
from tests.servers import REPO, ServerProcess, wait_done
from tests.test_sam3d_backend import make_checkpoints, make_venv, sam3d_env
from tests.test_sf3d_backend import STANDINS, Standin, Start, make_checkpoint


def fetched_layout(data: Path, *, complete: bool = True) -> Path:
    """A data dir as `hub3d fetch-weights sf3d` leaves it (small files, the real names)."""
    weights = data / "weights"
    make_checkpoint(weights / "sf3d")
    hub = weights / "hf" / "hub"
    repos = {"facebook/dinov2-large": ("config.json", "model.safetensors",
                                       "preprocessor_config.json"),
             "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": ("open_clip_pytorch_model.bin",)}
    for repo, names in repos.items():
        snap = hub / f"models--{repo.replace('/', '--')}" / "snapshots" / ("a" * 40)
        snap.mkdir(parents=True)
        for name in names if complete else names[:1]:
            (snap / name).write_bytes(b"x")
    (weights / "u2net").mkdir()
    (weights / "u2net" / "u2net.onnx").write_bytes(b"onnx")
    return data


def test_explicit_setting_wins_then_fetched_then_the_hub(tmp_path: Path) -> None:
    data = tmp_path / "data"
    nothing = resolve_files(SF3D, data, {})
    assert (nothing.checkpoint, nothing.source, nothing.offline) == (
        "stabilityai/stable-fast-3d", FileSource.HUB, False)
    fetched_layout(data)
    found = resolve_files(SF3D, data, {})
    assert found.source is FileSource.FETCHED and found.offline and not found.missing
    assert found.env == {"HUB3D_SF3D_CHECKPOINT": str(data / "weights" / "sf3d"),
                         "HF_HOME": str(data / "weights" / "hf"),
                         "U2NET_HOME": str(data / "weights" / "u2net"), "HF_HUB_OFFLINE": "1"}
    mine = resolve_files(SF3D, data, {"HUB3D_SF3D_CHECKPOINT": "/my/ckpt", "HF_HOME": "/my/hf"})
    assert (mine.checkpoint, mine.source, mine.offline) == ("/my/ckpt", FileSource.SETTING, False)
    assert "HUB3D_SF3D_CHECKPOINT" not in mine.env and "HF_HOME" not in mine.env
    online = resolve_files(SF3D, data, {"HF_HUB_OFFLINE": "0"})
    assert online.source is FileSource.FETCHED and not online.offline
    assert "HF_HUB_OFFLINE" not in online.env


def test_a_half_fetched_data_dir_stays_online_and_says_what_is_missing(tmp_path: Path) -> None:
    data = fetched_layout(tmp_path / "data", complete=False)
    files = resolve_files(SF3D, data, {})
    assert files.source is FileSource.FETCHED and not files.offline
    assert "facebook/dinov2-large/model.safetensors" in files.missing
    assert "HF_HUB_OFFLINE" not in files.env and files.env["HF_HOME"].endswith("hf")


def test_sam3d_checkpoints_come_from_its_source_tree_unless_fetched(tmp_path: Path) -> None:
    env = {"HUB3D_SAM3D_SRC": str(tmp_path / "src")}
    files = resolve_files(SAM3D, tmp_path / "data", env)
    assert (files.checkpoint, files.source) == (str(tmp_path / "src" / "checkpoints" / "hf"),
                                                FileSource.SOURCE_TREE)
    make_checkpoints(tmp_path / "data" / "weights" / "sam3d" / "checkpoints")
    files = resolve_files(SAM3D, tmp_path / "data", env)
    assert files.source is FileSource.FETCHED
    assert files.env["HUB3D_SAM3D_CHECKPOINTS"] == str(
        tmp_path / "data" / "weights" / "sam3d" / "checkpoints")


def test_serve_with_only_the_data_dir_loads_the_fetched_checkpoint_offline(
        start_server: Start, tmp_path: Path, png_b64: str) -> None:
    data = fetched_layout(tmp_path / "data")
    standin = Standin(tmp_path / "standin")
    srv = start_server("--models", "sf3d", "--devices", "cpu", data_dir=data,
                       env={"HUB3D_SF3D_SRC": str(STANDINS), **standin.env()})
    info = requests.get(f"{srv.url}/models", timeout=10).json()[0]
    assert info["weights"]["checkpoint"] == str(data / "weights" / "sf3d")
    assert (info["weights"]["source"], info["weights"]["offline"]) == ("fetched", True)
    job = wait_done(srv.url, requests.post(f"{srv.url}/generate", timeout=30, json={
        "image": png_b64}).json()["job_id"], 120)
    assert job["status"] == "completed", job
    [loaded] = standin.calls("from_pretrained")
    assert loaded["path"] == str(data / "weights" / "sf3d")
    assert (loaded["hf_hub_offline"], loaded["hf_home"], loaded["u2net_home"]) == (
        "1", str(data / "weights" / "hf"), str(data / "weights" / "u2net"))
    meta = requests.get(f"{srv.url}/job/{job['job_id']}/metadata", timeout=10).json()
    assert meta["weights"] == {"checkpoint": str(data / "weights" / "sf3d"),
                               "source": "fetched", "offline": True}


def test_one_python_per_model_for_its_workers_and_its_request_checks(
        start_server: Start, tmp_path: Path, png_b64: str) -> None:
    """HUB3D_PYTHON_SAM3D (not the backend's own variable): the worker runs it, and the
    with_texture check probes it too, finding the texture packages only that env has."""
    python = make_venv(tmp_path / "textures", "texture_libs")
    standin = Standin(tmp_path / "standin")
    env = sam3d_env(python, make_checkpoints(tmp_path / "ckpt"), standin)
    env["HUB3D_PYTHON_SAM3D"] = env.pop("HUB3D_SAM3D_PYTHON")
    srv = start_server("--models", "sam3d", "--devices", "cpu", env=env)
    info = requests.get(f"{srv.url}/models", timeout=10).json()[0]
    assert (info["python"], info["python_from"]) == (str(python), "HUB3D_PYTHON_SAM3D")
    r = requests.post(f"{srv.url}/generate", timeout=200,
                      json={"image": png_b64, "model": "sam3d", "with_texture": True})
    assert r.status_code == 202, r.text
    job = wait_done(srv.url, r.json()["job_id"], 120)
    assert job["status"] == "completed", job
    assert standin.calls("run")[-1]["python"] == str(python)


PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "hello3d"
        version = "0.1.0"

        [project.entry-points."hub3d.models"]
        hello = "hello3d:HelloBackend"
    """,
    "hello3d/doctor.py": '''
        """Doctor's rows for the hello backend."""
        from hub3d.doctor.core import Row


        def gather(python, data_dir):
            return {"hello": "a box needs no weights"}


        def rows(facts):
            return [Row("hello backend", "ok", facts["hello"])]
    ''',
    "hello3d/__init__.py": '''
        """A backend of its own: a unit box, coloured by the seed."""
        import trimesh

        from hub3d.fsutil import atomic_write_bytes
        from hub3d.models.base import Backend


        class HelloBackend(Backend):
            name = "hello"
            description = "a throwaway backend from its own package"
            doctor_section = "hello3d.doctor"

            def run(self, job, report):
                from hub3d.models.base import JobOutput

                report("inference")
                box = trimesh.creation.box()
                box.visual.vertex_colors = [job.params.seed % 256, 90, 200, 255]
                path = job.job_dir / "result.glb"
                atomic_write_bytes(path, box.export(file_type="glb"))
                return JobOutput(path, "model/gltf-binary", {"faces": len(box.faces)})
    ''',
}


def test_a_backend_in_its_own_package_is_served_with_no_hub3d_file_touched(
        tmp_path: Path, png_bytes: bytes) -> None:
    pkg = tmp_path / "pkg"
    for name, text in PACKAGE.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(textwrap.dedent(text).lstrip())
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--target", str(site), str(pkg)], timeout=300, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    doctor = subprocess.run([sys.executable, "-m", "hub3d", "doctor", "--models", "hello"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"})
    assert "hello backend" in doctor.stdout and "a box needs no weights" in doctor.stdout
    assert "SF3D weights" not in doctor.stdout  # only the models asked for
    srv = ServerProcess(tmp_path / "data", ["--models", "hello,inflate"],
                        env={"PYTHONPATH": str(site)})
    srv.start(60)
    try:
        [hello, _] = requests.get(f"{srv.url}/models", timeout=10).json()
        assert (hello["name"], hello["default"]) == ("hello", True)
        assert [f["name"] for f in hello["formats"] if f["native"]] == ["glb"]
        assert hello["description"] == "a throwaway backend from its own package"
        r = requests.post(f"{srv.url}/generate/sync", timeout=120, json={
            "image": base64.b64encode(png_bytes).decode(), "seed": 7})
        assert r.status_code == 200, r.text
        assert_valid_glb(r.content)
        meta = requests.get(f"{srv.url}/job/{r.headers['X-Job-Id']}/metadata", timeout=10)
        assert meta.json()["faces"] == 12
    finally:
        srv.stop()


def test_catalog_says_why_an_unknown_model_cannot_load(tmp_path: Path) -> None:
    catalog = Catalog.build(["inflate", "nope"], tmp_path)
    assert catalog.default == "inflate" and catalog.names == ["inflate", "nope"]
    nope = catalog.entry("nope")
    assert nope.cls is None and "unknown model 'nope'" in (nope.error or "")
    with pytest.raises(Exception, match="model 'nope' is unavailable: cannot import backend"):
        catalog.backend("nope")
