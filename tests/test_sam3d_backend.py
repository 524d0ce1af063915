"""The SAM-3D adapter, through the real server, with its worker under a separate interpreter.

The model code is the stand-in tests/standins/sam3d/notebook/inference.py, mirroring
notebook/inference.py and the `run` signature of
sam3d_objects/pipeline/inference_pipeline_pointmap.py of facebookresearch/sam-3d-objects at
cf06676 (see UPSTREAM.md). The worker's Python is a venv made here (HUB3D_SAM3D_PYTHON).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from hub3d.models.sam3d_env import low_vram_message
from tests.servers import ServerProcess
from tests.test_sf3d_backend import (
    STANDINS,
    Standin,
    Start,
    b64_png,
    make_checkpoint,
    submit,
    wait_done,
    wait_model_state,
)

pytest.importorskip("hub3d.imaging.background")

SAM3D_SRC = STANDINS / "sam3d"
PIPELINE_YAML = ("_target_: sam3d_objects.pipeline.inference_pipeline_pointmap."
                 "InferencePipelinePointMap\nss_generator:\n  _target_: torch.nn.Identity\n")


def make_venv(folder: Path, *libs: str) -> Path:
    """A venv seeing this env's packages, plus the stand-in folders named in `libs`, in order."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    purelib = Path(site.stdout.strip())
    # The packages of the env running the tests (numpy, trimesh …), as a SAM-3D env has its own;
    # --system-site-packages alone reaches only the base interpreter's.
    ours = sysconfig.get_paths()["purelib"]
    (purelib / "hub3d_test_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    if libs:  # one .pth, so the first folder wins an import name both hold
        (purelib / "hub3d_texture_standins.pth").write_text(
            "".join(f"{STANDINS / lib}\n" for lib in libs))
    return python


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sam3d-envs")
    return {"plain": make_venv(root / "plain"),
            "textures": make_venv(root / "textures", "texture_libs"),
            # graphdeco-inria's rasterizer shadows the mip-splatting one; nvdiffrast is there
            "graphdeco": make_venv(root / "graphdeco", "rasterizer_graphdeco", "texture_libs")}


def make_checkpoints(folder: Path, yaml_text: str = PIPELINE_YAML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(yaml_text)
    (folder / "ss_generator.ckpt").write_bytes(b"ckpt")
    return folder


def sam3d_env(python: Path, checkpoints: Path, standin: Standin) -> dict[str, str]:
    return {"HUB3D_SAM3D_PYTHON": str(python), "HUB3D_SAM3D_SRC": str(SAM3D_SRC),
            "HUB3D_SAM3D_CHECKPOINTS": str(checkpoints), **standin.env()}


@pytest.fixture(autouse=True)
def _no_conda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a venv on a JupyterHub: no CONDA_PREFIX, which upstream reads at import."""
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    monkeypatch.delenv("LIDRA_SKIP_INIT", raising=False)


@pytest.fixture
def standin(tmp_path: Path) -> Standin:
    return Standin(tmp_path / "standin")


@pytest.fixture
def server(start_server: Start, venvs: dict[str, Path], standin: Standin,
           tmp_path: Path) -> ServerProcess:
    env = sam3d_env(venvs["plain"], make_checkpoints(tmp_path / "ckpt"), standin)
    return start_server("--models", "sam3d,inflate", "--devices", "cpu", env=env)


def test_glb_job_runs_in_its_own_env_with_every_flag_explicit(
        server: ServerProcess, standin: Standin, venvs: dict[str, Path], png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate/sync", timeout=120, json={
        "image": png_b64, "model": "sam3d", "seed": 7, "stage1_inference_steps": 12,
        "stage2_inference_steps": 9})
    assert r.status_code == 200, r.text
    assert r.content[:4] == b"glTF"
    [loaded] = standin.calls("Inference")
    assert loaded["compile"] is False and loaded["config_file"].endswith("pipeline.yaml")
    [run] = standin.calls("run")
    assert run["python"] == str(venvs["plain"])  # the worker ran under HUB3D_SAM3D_PYTHON
    assert run["lidra_skip_init"] == "true"
    assert run["image_shape"][2] == 4 and run["image_dtype"] == "uint8"
    assert 0 < run["alpha_pixels"] < run["image_shape"][0] * run["image_shape"][1]
    assert run["mask"] is None and run["seed"] == 7
    assert {k: run[k] for k in ("stage1_only", "with_mesh_postprocess", "with_texture_baking",
                                "with_layout_postprocess", "use_vertex_color",
                                "use_stage1_distillation", "use_stage2_distillation",
                                "estimate_plane", "pointmap", "decode_formats")} == {
        "stage1_only": False, "with_mesh_postprocess": False, "with_texture_baking": False,
        "with_layout_postprocess": False, "use_vertex_color": True,
        "use_stage1_distillation": False, "use_stage2_distillation": False,
        "estimate_plane": False, "pointmap": None, "decode_formats": None}
    assert (run["stage1_inference_steps"], run["stage2_inference_steps"]) == (12, 9)
    meta = requests.get(f"{server.url}/job/{r.headers['X-Job-Id']}/metadata").json()
    assert meta["vertices"] > 0 and meta["pose"]["scale"] == [[1.0, 1.0, 1.0]]
    assert meta["pose"]["rotation"] == [[1.0, 0.0, 0.0, 0.0]]  # upstream's (1, 4) quaternion


def test_worker_points_cuda_home_at_its_own_env(start_server: Start, venvs: dict[str, Path],
                                                standin: Standin, tmp_path: Path,
                                                png_b64: str) -> None:
    """A server started inside another conda env must not hand that env's toolkit to SAM-3D."""
    env = {**sam3d_env(venvs["plain"], make_checkpoints(tmp_path / "ckpt"), standin),
           "CONDA_PREFIX": str(tmp_path / "other-env"), "CUDA_HOME": "/usr/local/cuda-11.8"}
    srv = start_server("--models", "sam3d", "--devices", "cpu", env=env)
    assert wait_done(srv.url, submit(srv.url, png_b64, "sam3d"))["status"] == "completed"
    run = standin.calls("run")[-1]
    prefix = str(venvs["plain"].parent.parent)  # <env>/bin/python → <env>
    assert (run["conda_prefix"], run["cuda_home"]) == (prefix, prefix)
    assert run["path0"] == str(venvs["plain"].parent)  # its nvcc and gcc first, as activated


def test_soft_alpha_reaches_upstream_as_a_binary_mask(server: ServerProcess, standin: Standin,
                                                     ) -> None:
    """Upstream's crop takes every non-zero alpha pixel: a faint halo must not widen it."""
    from PIL import Image, ImageDraw

    alpha = Image.new("L", (256, 256), 0)
    draw = ImageDraw.Draw(alpha)
    draw.rectangle((28, 28, 227, 227), fill=20)  # a faint 200 x 200 halo (soft matting)
    draw.rectangle((78, 103, 177, 152), fill=255)  # the object, 100 x 50 pixels
    rgba = Image.new("RGB", (256, 256), (200, 40, 40)).convert("RGBA")
    rgba.putalpha(alpha)
    job = wait_done(server.url, submit(server.url, b64_png(rgba), "sam3d"))
    assert job["status"] == "completed", job
    run = standin.calls("run")[-1]
    assert run["alpha_values"] == [0, 255]
    assert run["alpha_pixels"] == 100 * 50


def test_ply_comes_from_the_gaussians_save_ply(server: ServerProcess, png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate/sync", timeout=120,
                      json={"image": png_b64, "model": "sam3d", "output_format": "ply"})
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"ply")
    meta = requests.get(f"{server.url}/job/{r.headers['X-Job-Id']}/metadata").json()
    assert meta["gaussians"] == 64 and meta["result"] == "result.ply"


def test_client_mask_becomes_the_alpha(server: ServerProcess, standin: Standin,
                                       png_b64: str) -> None:
    from PIL import Image, ImageDraw

    mask = Image.new("L", (256, 256), 0)
    ImageDraw.Draw(mask).rectangle((50, 60, 149, 109), fill=255)  # 100 x 50 pixels
    job = wait_done(server.url, submit(server.url, png_b64, "sam3d", mask=b64_png(mask)))
    assert job["status"] == "completed", job
    assert abs(standin.calls("run")[-1]["alpha_pixels"] - 5000) <= 500


def test_with_texture_needs_both_packages_in_that_env(server: ServerProcess,
                                                      png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate", timeout=200,
                      json={"image": png_b64, "model": "sam3d", "with_texture": True})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "nvdiffrast" in message and "diff_gaussian_rasterization" in message
    assert "with_texture=false" in message


def test_with_texture_refused_with_graphdeco_rasterizer(
        start_server: Start, venvs: dict[str, Path], standin: Standin, tmp_path: Path,
        png_b64: str) -> None:
    """It imports, but upstream's baking passes kernel_size/subpixel_offset: refuse up front."""
    env = sam3d_env(venvs["graphdeco"], make_checkpoints(tmp_path / "ckpt"), standin)
    srv = start_server("--models", "sam3d", "--devices", "cpu", env=env)
    r = requests.post(f"{srv.url}/generate", timeout=200,
                      json={"image": png_b64, "model": "sam3d", "with_texture": True})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "GaussianRasterizationSettings has no kernel_size, subpixel_offset" in message
    assert "mip-splatting" in message and "with_texture=false" in message
    assert "nvdiffrast" not in message.split("usable there:")[1].split(". Send")[0]
    assert standin.calls("run") == []


def test_with_texture_when_both_import(start_server: Start, venvs: dict[str, Path],
                                       standin: Standin, tmp_path: Path,
                                       png_b64: str) -> None:
    env = sam3d_env(venvs["textures"], make_checkpoints(tmp_path / "ckpt"), standin)
    srv = start_server("--models", "sam3d", "--devices", "cpu", env=env)
    job = wait_done(srv.url, submit(srv.url, png_b64, "sam3d", with_texture=True))
    assert job["status"] == "completed", job
    run = standin.calls("run")[-1]
    assert (run["with_mesh_postprocess"], run["with_texture_baking"],
            run["use_vertex_color"]) == (True, True, False)


def test_oom_and_no_mesh_fail_the_job(server: ServerProcess, standin: Standin,
                                      png_b64: str) -> None:
    standin.set_mode("oom")
    job = wait_done(server.url, submit(server.url, png_b64, "sam3d"))
    assert job["status"] == "failed" and "ran out of GPU memory" in job["error"], job
    standin.set_mode("empty")
    job = wait_done(server.url, submit(server.url, png_b64, "sam3d"))
    assert job["status"] == "failed" and "no object detected" in job["error"], job
    assert len({c["pid"] for c in standin.calls("run")}) == 2  # OOM restarted the worker


@pytest.mark.parametrize("case, needle", [
    ("target", "not allowed to be hydra instantiated"),
    ("nested", "point HUB3D_SAM3D_CHECKPOINTS there"),
    ("missing", "does not exist"),
    ("no_src", "HUB3D_SAM3D_SRC"),
])
def test_load_errors_visible_in_health(start_server: Start, venvs: dict[str, Path],
                                       standin: Standin, tmp_path: Path, case: str,
                                       needle: str) -> None:
    checkpoints = {
        "target": make_checkpoints(tmp_path / "a", "x:\n  _target_: os.system\n"),
        "nested": make_checkpoints(tmp_path / "b" / "checkpoints").parent,
        "missing": tmp_path / "nope",
        "no_src": make_checkpoints(tmp_path / "c"),
    }[case]
    env = sam3d_env(venvs["plain"], checkpoints, standin)
    if case == "no_src":
        env["HUB3D_SAM3D_SRC"] = ""
    srv = start_server("--models", "sam3d", "--devices", "cpu", "--preload", env=env)
    info = wait_model_state(srv.url, "sam3d", ("failed", "ready"))
    assert info["state"] == "failed" and needle in info["error"], info


def test_low_vram_refusal_names_the_card_and_the_figure() -> None:
    message = low_vram_message("NVIDIA RTX 6000 Ada Generation", 20.5, 32.0)
    assert message is not None
    assert "NVIDIA RTX 6000 Ada Generation has 20.5 GB free" in message
    assert "HUB3D_SAM3D_ALLOW_LOW_VRAM=1" in message
    assert low_vram_message("NVIDIA H100", 70.0, 32.0) is None


class FakeCard:
    """A 36 GB card as the vram_probe seam: each live worker uses its model's declared need."""

    def __init__(self, total_gb: float) -> None:
        self.total_gb = total_gb
        self.app: Any = None

    def __call__(self, device: str) -> float:
        pool = self.app.state.pool
        used = sum(e.cls.vram_gb for e in pool.models.values() for s in e.slots
                   if e.cls and s.device == device and s.worker is not None and s.worker.alive)
        return self.total_gb - used


def test_vram_short_unloads_the_idle_lru_model_and_says_so(
        venvs: dict[str, Path], standin: Standin, tmp_path: Path, png_b64: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hub3d.config import Settings
    from hub3d.gpu import GPU
    from tests.servers import InProcessServer, free_port

    env = {**sam3d_env(venvs["plain"], make_checkpoints(tmp_path / "ckpt"), standin),
           "HUB3D_SF3D_SRC": str(STANDINS),
           "HUB3D_SF3D_CHECKPOINT": str(make_checkpoint(tmp_path / "sf3d"))}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    card = FakeCard(36.0)
    settings = Settings(port=free_port(), models=["sf3d", "sam3d"], data_dir=tmp_path / "data",
                        devices=["cuda:0"])
    gpus = [GPU(0, "Fake 36GB", 36.0, 36.0)]
    server = InProcessServer(settings, vram_probe=card, gpu_lister=lambda: gpus)
    card.app = server.app
    with server as srv:
        assert wait_done(srv.url, submit(srv.url, png_b64, "sf3d"))["status"] == "completed"
        job_id = submit(srv.url, png_b64, "sam3d")
        messages = _event_messages(srv.url, job_id)
        assert wait_done(srv.url, job_id)["status"] == "completed"
        unloads = [m for m in messages if "unloading idle model 'sf3d'" in m]
        assert unloads and "28.0 GB free, 32.0 GB needed" in unloads[0], messages
        models = {m["name"]: m for m in requests.get(f"{srv.url}/models", timeout=5).json()}
        assert models["sf3d"]["state"] == "unloaded" and models["sam3d"]["state"] == "ready"


def _event_messages(url: str, job_id: str, timeout: float = 60) -> list[str]:
    messages: list[str] = []
    end = time.monotonic() + timeout
    with requests.get(f"{url}/job/{job_id}/events", stream=True, timeout=timeout) as resp:
        for line in resp.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                job = json.loads(line[5:])
                messages.append(job.get("message") or "")
                if job["status"] in ("completed", "failed", "canceled"):
                    break
            if time.monotonic() > end:
                break
    return messages

