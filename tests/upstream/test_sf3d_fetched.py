"""What `hub3d fetch-weights sf3d` leaves in a data dir is what SF3D then loads, offline.

The data dir is made by the real command, in the SF3D env (huggingface_hub 0.23.4, as the
quickstart runs it), against the Hub stand-in (tests/hf_hub.py) serving this tier's reduced
random checkpoint under the real repos' names. Then the stand-in stops (still recording), and
`hub3d serve --data-dir D` and the notebook's Run All, given only the data dir, must load that
checkpoint, with DINOv2 found through transformers' own lookup in the fetched HF cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
import yaml

from tests.gltf_check import assert_valid_glb
from tests.hf_hub import HubStandIn
from tests.servers import REPO, ServerProcess, free_port, wait_done
from tests.upstream.test_sf3d_serve import JOB_S, SPHERE, _disc, _submit
from tests.upstream.u2net_onnx import u2net_standin

pytestmark = pytest.mark.upstream

TOKEN = "hf_accepted"
SF3D_REPO, DINO_REPO = "stabilityai/stable-fast-3d", "facebook/dinov2-large"
CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
# What facebook/dinov2-large publishes beside its weights. SF3D normalises images itself and
# never reads it; it is served because the plan fetches it.
DINO_PREPROCESSOR = {"image_processor_type": "BitImageProcessor", "do_resize": True,
                     "size": {"shortest_edge": 256}, "resample": 3, "do_center_crop": True,
                     "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
                     "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
                     "do_convert_rgb": True}
CLIP_STATE_DICT = """
import sys, torch
from safetensors.torch import load_file
prefix = "image_estimator.model."
weights = load_file(sys.argv[1])
clip = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
assert clip, sorted(weights)[:20]
torch.save(clip, sys.argv[2])
"""


@dataclass
class Fetched:
    data_dir: Path
    hub: HubStandIn  # stopped: answers nothing, records every request


def _served(model_dir: Path, sf3d_env: Path, root: Path) -> dict[str, Path]:
    """The three repos of the sf3d plan, made from the reduced checkpoint."""
    sf3d, dino, clip = (root / r for r in (SF3D_REPO, DINO_REPO, CLIP_REPO))
    for folder in (sf3d, dino, clip):
        folder.mkdir(parents=True)
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    # as the published config names it: the load then looks DINOv2 up in the HF cache
    config["image_tokenizer"]["pretrained_model_name_or_path"] = DINO_REPO
    (sf3d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (sf3d / "model.safetensors").symlink_to(model_dir / "model.safetensors")
    for name in ("config.json", "model.safetensors"):
        (dino / name).symlink_to(model_dir / "dinov2" / name)
    (dino / "preprocessor_config.json").write_text(json.dumps(DINO_PREPROCESSOR, indent=2))
    # The plan fetches open_clip's ViT-B-32 weights, which the published config builds CLIP from
    # (pretrain: laion2b_s34b_b79k). The reduced config builds ViT-S-32-alt with pretrain "":
    # open_clip has no pretrained tag for that model, so nothing reads this file. It holds the
    # reduced model's own CLIP weights as an open_clip state dict: real, just not ViT-B-32's.
    subprocess.run([str(sf3d_env), "-c", CLIP_STATE_DICT, str(model_dir / "model.safetensors"),
                    str(clip / "open_clip_pytorch_model.bin")], check=True, timeout=300)
    return {SF3D_REPO: sf3d, DINO_REPO: dino, CLIP_REPO: clip}


def _clean_env(home: Path) -> dict[str, str]:
    """This process's env without any Hugging Face, torch, rembg or hub3d setting."""
    home.mkdir(parents=True, exist_ok=True)
    drop = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_HOME", "U2NET_HOME", "HUB3D_",
            "XDG_CACHE_HOME", "JUPYTER")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "HOME": str(home), "OMP_NUM_THREADS": "2"}


@pytest.fixture(scope="module")
def fetched(sf3d_env: Path, model_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fetched]:
    tmp = tmp_path_factory.mktemp("fetched")
    (tmp / "u2net.onnx").write_bytes(u2net_standin())
    repos = _served(model_dir, sf3d_env, tmp / "repos")
    with HubStandIn(repos, gated=[SF3D_REPO], tokens={TOKEN: [SF3D_REPO]},
                    files={"u2net.onnx": tmp / "u2net.onnx"}) as hub:
        data = tmp / "data"
        env = {**_clean_env(tmp / "home"), "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN,
               "HUB3D_U2NET_URL": hub.file_url("u2net.onnx"), "PYTHONPATH": str(REPO)}
        done = subprocess.run([str(sf3d_env), "-m", "hub3d", "fetch-weights", "sf3d", "--dir",
                               str(data)], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (data / "weights" / "sf3d" / "config.yaml").read_text() == \
            (repos[SF3D_REPO] / "config.yaml").read_text()
        hub.stop()
        yield Fetched(data, hub)


def _names_the_fetched_checkpoint(meta: dict[str, Any], sf3d: dict[str, Any],
                                  checkpoint: Path) -> None:
    """The job's metadata and /models both say: this checkpoint, fetched, offline."""
    assert meta["checkpoint"] == str(checkpoint), meta  # what the backend loaded
    assert meta["weights"] == {"checkpoint": str(checkpoint), "source": "fetched",
                               "offline": True}, meta
    weights = sf3d["weights"]
    assert (weights["checkpoint"], weights["source"], weights["offline"]) == (
        str(checkpoint), "fetched", True), weights
    assert "fetched by `hub3d fetch-weights`" in weights["summary"], weights


def _serve_one_job(fetched: Fetched, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`hub3d serve --data-dir D --models <sphere>` with exactly `env`: (job, metadata, sf3d's
    entry in /models)."""
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    srv = ServerProcess(fetched.data_dir, ["--models", SPHERE]).start(60)
    try:
        job = wait_done(srv.url, _submit(srv.url, _disc(), texture_resolution=512), JOB_S)
        meta = requests.get(f"{srv.url}/job/{job['job_id']}/metadata", timeout=10).json()
        models = requests.get(f"{srv.url}/models", timeout=10).json()
    finally:
        srv.stop()
    unanswered = [s for s in fetched.hub.seen if not s.answered]
    assert job["status"] == "completed", (job, unanswered, srv.log()[-3000:])
    assert unanswered == []
    (sf3d,) = [m for m in models if m["name"] == "sf3d"]
    return job, meta, sf3d


def _kernel_env(sf3d_env: Path, sf3d_src: Path, tmp: Path, hub: HubStandIn) -> dict[str, str]:
    # the SF3D env's Python and source, as the recipe's kernel provides them; HF_ENDPOINT only
    # points any hub request at the stopped stand-in, where it is recorded (else it would go
    # to huggingface.co unseen)
    return {**_clean_env(tmp / "home"), "HF_ENDPOINT": hub.url,
            "HUB3D_PYTHON_SF3D": str(sf3d_env), "HUB3D_SF3D_SRC": str(sf3d_src)}


def test_the_settings_offline_env_names_load_the_fetched_checkpoint(
        fetched: Fetched, sf3d_env: Path, sf3d_src: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout is loadable offline with what fetch-weights printed (`. offline.env`): the
    tests below fail only on what serve finds by itself."""
    lines = (fetched.data_dir / "offline.env").read_text().splitlines()
    written = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    env = {**_kernel_env(sf3d_env, sf3d_src, tmp_path, fetched.hub), **written}
    _, meta, _ = _serve_one_job(fetched, env, monkeypatch)
    assert meta["checkpoint"] == str((fetched.data_dir / "weights" / "sf3d").resolve())


def test_serve_with_only_the_data_dir_loads_the_fetched_checkpoint(
        fetched: Fetched, sf3d_env: Path, sf3d_src: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = _kernel_env(sf3d_env, sf3d_src, tmp_path, fetched.hub)
    _, meta, sf3d = _serve_one_job(fetched, env, monkeypatch)
    checkpoint = (fetched.data_dir / "weights" / "sf3d").resolve()
    _names_the_fetched_checkpoint(meta, sf3d, checkpoint)


def test_notebook_run_all_makes_its_sample_from_the_fetched_checkpoint(
        fetched: Fetched, sf3d_env: Path, sf3d_src: Path, tmp_path: Path) -> None:
    spec = tmp_path / "jupyter" / "kernels" / "hub3d-sf3d"
    spec.mkdir(parents=True)
    # as the recipe's kernelspec; PYTHONPATH puts this checkout's hub3d (and the test model)
    # first, as the suite's notebook runs do
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [str(sf3d_env), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (hub3d SF3D, tests)", "language": "python",
        "env": {"HUB3D_SF3D_SRC": str(sf3d_src), "PYTHONPATH": str(REPO),
                # the stand-in's u2net is not the published file rembg checks by md5 (and
                # would fetch from GitHub): see u2net_onnx.py
                "MODEL_CHECKSUM_DISABLED": "1"}}))
    env = {**_clean_env(tmp_path / "home"), "HF_ENDPOINT": fetched.hub.url,
           "JUPYTER_PATH": str(tmp_path / "jupyter")}
    out = tmp_path / "out.ipynb"
    port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "papermill", str(REPO / "sf3d_api_server.ipynb"), str(out),
         "-k", "hub3d-sf3d", "-p", "DATA_DIR", str(fetched.data_dir), "-p", "MODELS", SPHERE,
         "-p", "SAMPLE", "True", "-p", "PORT", str(port), "-p", "TUNNEL", "none",
         "-p", "BLOCK", "False", "--no-progress-bar"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    nb = nbformat.read(out, as_version=4) if out.is_file() else None
    text = "\n".join(o.get("text", "") or json.dumps(o.get("evalue", ""))
                     for c in (nb.cells if nb else []) if c.cell_type == "code"
                     for o in c.outputs)
    assert run.returncode == 0, (run.stderr[-3000:], text[-3000:])
    glb = fetched.data_dir / "samples" / "tshirt.glb"
    assert_valid_glb(glb)
    assert f"sf3d: {glb}" in text
    checkpoint = (fetched.data_dir / "weights" / "sf3d").resolve()
    # the start cell says where the checkpoint comes from, as /models does
    assert f"checkpoint {checkpoint}: fetched by `hub3d fetch-weights`" in text, text[-3000:]
    assert [s for s in fetched.hub.seen if not s.answered] == []
