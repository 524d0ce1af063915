"""The SF3D adapter, driven through the real server and real worker processes.

The model code is the stand-in package tests/standins/sf3d, whose signatures mirror
sf3d/system.py and sf3d/utils.py of Stability-AI/stable-fast-3d at ff21fc4 (see UPSTREAM.md).
It records every call it receives, so these tests check the exact arguments hub3d passes.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
import trimesh
from PIL import Image

from tests.local_http import serving
from tests.servers import REPO, ServerProcess, wait_done

pytest.importorskip("hub3d.imaging.background")

STANDINS = REPO / "tests" / "standins"
Start = Callable[..., ServerProcess]


class Standin:
    """The files through which a test talks to the stand-in model in the worker."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.calls_path, self.mode_path = root / "calls.jsonl", root / "mode"
        self.set_mode("ok")

    def set_mode(self, mode: str) -> None:
        self.mode_path.write_text(mode)

    def calls(self, name: str) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        lines = self.calls_path.read_text().splitlines()
        return [c for c in map(json.loads, lines) if c["call"] == name]

    def env(self) -> dict[str, str]:
        return {"HUB3D_STANDIN_CALLS": str(self.calls_path),
                "HUB3D_STANDIN_MODE": str(self.mode_path)}


def make_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("cond_image_size: 512\n")
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    return folder


def submit(url: str, png_b64: str, model: str, **params: Any) -> str:
    r = requests.post(f"{url}/generate", json={"image": png_b64, "model": model, **params},
                      timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def wait_model_state(url: str, model: str, states: tuple[str, ...],
                     timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = requests.get(f"{url}/health", timeout=5).json()["models"][model]
        if info["state"] in states:
            return dict(info)
        time.sleep(0.1)
    raise TimeoutError(f"model {model} never reached {states}")


def b64_png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def standin(tmp_path: Path) -> Standin:
    return Standin(tmp_path / "standin")


@pytest.fixture
def sf3d_server(start_server: Start, standin: Standin, tmp_path: Path) -> ServerProcess:
    env = {"HUB3D_SF3D_SRC": str(STANDINS),
           "HUB3D_SF3D_CHECKPOINT": str(make_checkpoint(tmp_path / "ckpt")), **standin.env()}
    return start_server("--models", "sf3d,inflate", "--devices", "cpu", env=env)


def test_job_passes_upstream_the_exact_arguments(sf3d_server: ServerProcess, standin: Standin,
                                                 png_b64: str, tmp_path: Path) -> None:
    r = requests.post(f"{sf3d_server.url}/generate/sync", timeout=120, json={
        "image": png_b64, "model": "sf3d", "texture_resolution": 512, "remesh_option": "Quad",
        "vertex_count": 5000, "foreground_ratio": 0.9})
    assert r.status_code == 200, r.text
    scene = trimesh.load(io.BytesIO(r.content), file_type="glb")
    assert sum(len(g.vertices) for g in scene.geometry.values()) > 0
    [loaded] = standin.calls("from_pretrained")
    assert loaded["path"] == str((tmp_path / "ckpt").resolve())
    assert (loaded["config_name"], loaded["weight_name"]) == ("config.yaml", "model.safetensors")
    assert standin.calls("to")[0]["device"] == "cpu"
    [resize] = standin.calls("resize_foreground")
    assert resize["ratio"] == 0.9
    [run] = standin.calls("run_image")
    assert run["image_mode"] == "RGBA"
    assert run["remesh"] == "quad"  # lowercase: upstream reads anything else as "none"
    assert (run["bake_resolution"], run["vertex_count"]) == (512, 5000)
    assert run["estimate_illumination"] is False
    meta = requests.get(f"{sf3d_server.url}/job/{r.headers['X-Job-Id']}/metadata").json()
    assert meta["params"]["texture_resolution"] == 512
    assert meta["params"]["remesh_option"] == "quad"
    assert meta["vertices"] > 0 and meta["faces"] > 0
    assert {"preprocessing", "inference", "exporting"} <= set(meta["timings"])
    assert {"background", "resize_foreground", "run_image", "export_glb"} <= \
        set(meta["model_timings"])
    preview = requests.get(f"{sf3d_server.url}/job/{r.headers['X-Job-Id']}/preview", timeout=30)
    assert preview.status_code == 200 and preview.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("params, needle", [
    ({"output_format": "ply"}, "model 'sf3d' does not offer output_format 'ply' (served here "
                               "by: inflate); it offers glb, obj, usdz"),
    ({"output_format": "fbx"}, "unknown output format 'fbx': hub3d writes glb, obj, ply, usdz;"
                               " model 'sf3d' offers glb, obj, usdz"),
    ({"texture_resolution": 4096}, "texture_resolution"),
    ({"texture_resolution": 256}, "texture_resolution"),
    ({"vertex_count": 20001}, "vertex_count"),
    ({"foreground_ratio": 0.4}, "foreground_ratio"),
    ({"remesh_option": "smooth"}, "remesh_option"),
])
def test_out_of_range_params_get_422(sf3d_server: ServerProcess, png_b64: str,
                                     params: dict[str, Any], needle: str) -> None:
    r = requests.post(f"{sf3d_server.url}/generate",
                      json={"image": png_b64, "model": "sf3d", **params}, timeout=30)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]["message"]


def test_empty_mesh_empty_mask_and_oom_fail_the_job(sf3d_server: ServerProcess,
                                                    standin: Standin, png_b64: str) -> None:
    url = sf3d_server.url
    standin.set_mode("empty")
    job = wait_done(url, submit(url, png_b64, "sf3d"))
    assert job["status"] == "failed" and "no object detected" in job["error"], job

    standin.set_mode("ok")
    black = b64_png(Image.new("L", (256, 256), 0))
    r = requests.post(f"{url}/generate", json={"image": png_b64, "model": "sf3d",
                                               "mask": black}, timeout=30)
    if r.status_code == 202:  # the background chain may refuse an empty mask itself (400)
        job = wait_done(url, r.json()["job_id"])
        assert job["status"] == "failed" and "no object detected" in job["error"], job
    else:
        assert r.status_code in (400, 422), r.text

    first_pid = standin.calls("run_image")[-1]["pid"]
    standin.set_mode("oom")
    job = wait_done(url, submit(url, png_b64, "sf3d"))
    assert job["status"] == "failed", job
    assert "ran out of GPU memory" in job["error"] and "1.10 GiB is free" in job["error"]
    standin.set_mode("ok")
    assert wait_done(url, submit(url, png_b64, "sf3d"))["status"] == "completed"
    assert standin.calls("run_image")[-1]["pid"] != first_pid  # OOM restarted the worker


class RefusingHub(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _refuse(self) -> None:
        body = b'{"error":"Access to model stabilityai/stable-fast-3d is restricted."}'
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Code", "GatedRepo")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _refuse  # noqa: N815


@pytest.fixture
def refusing_hub() -> Iterator[str]:
    with serving(RefusingHub) as url:
        yield url


def _layouts(tmp_path: Path, hub: str) -> dict[str, tuple[dict[str, str], str]]:
    nested = make_checkpoint(tmp_path / "nested" / "stable-fast-3d").parent
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text("a: 1\n")
    lfs = make_checkpoint(tmp_path / "lfs")
    (lfs / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    return {
        "missing": ({"HUB3D_SF3D_CHECKPOINT": str(tmp_path / "nope")}, "does not exist"),
        "files": ({"HUB3D_SF3D_CHECKPOINT": str(partial)}, "lacks model.safetensors"),
        "layout": ({"HUB3D_SF3D_CHECKPOINT": str(nested)}, "point HUB3D_SF3D_CHECKPOINT there"),
        "lfs": ({"HUB3D_SF3D_CHECKPOINT": str(lfs)}, "Git LFS pointer"),
        "src": ({"HUB3D_SF3D_SRC": str(tmp_path)}, "sf3d/system.py is missing"),
        "gated": ({"HUB3D_SF3D_CHECKPOINT": "stabilityai/stable-fast-3d", "HF_ENDPOINT": hub,
                   "HF_TOKEN": "hf_x", "HF_HOME": str(tmp_path / "hf")},
                  "Accept the licence at https://huggingface.co/stabilityai/stable-fast-3d"),
    }


@pytest.mark.parametrize("case", ["missing", "files", "layout", "lfs", "src", "gated"])
def test_load_errors_are_clear_and_visible_in_health(start_server: Start, tmp_path: Path,
                                                     refusing_hub: str, case: str) -> None:
    if case == "gated":
        pytest.importorskip("huggingface_hub")
    env, needle = _layouts(tmp_path, refusing_hub)[case]
    env = {"HUB3D_SF3D_SRC": str(STANDINS),
           "HUB3D_SF3D_CHECKPOINT": str(make_checkpoint(tmp_path / "ok")), **env}
    srv = start_server("--models", "sf3d", "--devices", "cpu", "--preload", env=env)
    info = wait_model_state(srv.url, "sf3d", ("failed", "ready"))
    assert info["state"] == "failed", info
    assert needle in info["error"], info["error"]
    assert "Traceback" not in info["error"]


def test_two_gpus_one_worker_each_jobs_run_side_by_side(
        standin: Standin, tmp_path: Path, png_b64: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two (fake) cards from the gpu_lister seam: a worker per card, each sees its card as 0."""
    from hub3d.config import Settings
    from hub3d.gpu import GPU
    from tests.servers import InProcessServer, free_port

    env = {"HUB3D_SF3D_SRC": str(STANDINS),
           "HUB3D_SF3D_CHECKPOINT": str(make_checkpoint(tmp_path / "ckpt")), **standin.env()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cards = [GPU(0, "Fake 48GB", 48.0, 40.0), GPU(1, "Fake 48GB", 48.0, 40.0)]
    settings = Settings(port=free_port(), models=["sf3d"], data_dir=tmp_path / "data")
    standin.set_mode("sleep:1.5")
    with InProcessServer(settings, gpu_lister=lambda: cards, vram_probe=lambda d: 40.0) as srv:
        jobs = [submit(srv.url, png_b64, "sf3d") for _ in range(2)]
        done = [wait_done(srv.url, j) for j in jobs]
        assert [j["status"] for j in done] == ["completed", "completed"], done
        [model] = requests.get(f"{srv.url}/models", timeout=5).json()
        assert model["devices"] == ["cuda:0", "cuda:1"]
    runs = standin.calls("run_image")  # on a GPU each worker first runs its warm-up job
    assert sorted(r["cuda_visible"] for r in runs) == ["0", "0", "1", "1"]
    assert {r["device"] for r in runs} == {"cuda:0"}  # each worker sees its card as cuda:0
    assert len({r["pid"] for r in runs}) == 2  # two workers, one per card


@pytest.mark.parametrize("warmup", ["auto", "off"])
def test_a_gpu_worker_is_ready_after_its_warm_up_job(
        standin: Standin, tmp_path: Path, png_b64: str, monkeypatch: pytest.MonkeyPatch,
        warmup: str) -> None:
    """SF3D on a (fake) card runs one reconstruction at load, before it says ready: /models
    shows its time, and the first job's model_load includes it."""
    from hub3d.config import Settings
    from hub3d.gpu import GPU
    from tests.servers import InProcessServer, free_port

    env = {"HUB3D_SF3D_SRC": str(STANDINS),
           "HUB3D_SF3D_CHECKPOINT": str(make_checkpoint(tmp_path / "ckpt")), **standin.env()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(port=free_port(), models=["sf3d"], data_dir=tmp_path / "data",
                        warmup=warmup)
    standin.set_mode("sleep:0.5")
    cards = [GPU(0, "Fake 48GB", 48.0, 40.0)]
    with InProcessServer(settings, gpu_lister=lambda: cards, vram_probe=lambda d: 40.0) as srv:
        job = wait_done(srv.url, submit(srv.url, png_b64, "sf3d"))
        assert job["status"] == "completed", job
        [worker] = requests.get(f"{srv.url}/models", timeout=5).json()[0]["workers"]
    runs = standin.calls("run_image")
    if warmup == "off":
        assert worker["warmup_s"] is None and len(runs) == 1
        return
    assert worker["warmup_s"] >= 0.5 and len(runs) == 2
    assert runs[0]["bake_resolution"] == 1024 and runs[0]["remesh"] == "none"
    assert job["timings"]["model_load"] >= worker["warmup_s"]
