"""The SF3D kernel recipe, run for real: --cpu from a clean state (kernelspec, load check,
doctor in the env it built, on the tier's reduced checkpoint and on broken copies of it), and its
CUDA branch compiling texture_baker without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.upstream.conftest import RecipeRun, timings
from tests.upstream.sf3d_data import REPO, SF3D_CONFIG
from tests.upstream.sf3d_model import build_model

SF3D_ROWS = ("SF3D Python", "torch for SF3D", "extension build", "SF3D code",
             "SF3D config classes", "SF3D extensions", "SF3D on the CPU")


def doctor(python: Path, src: Path, **env: str) -> dict[str, dict]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HUB3D_", "HF_"))}
    out = subprocess.run([str(python), "-m", "hub3d", "doctor", "--json"], cwd=REPO,
                         env={**clean, "HUB3D_SF3D_SRC": str(src), **env},
                         capture_output=True, text=True, timeout=300)
    rows = json.loads(out.stdout)
    return {r["name"]: r for r in rows}


def test_recipe_cpu_from_clean_state(sf3d_recipe: RecipeRun, sf3d_src: Path) -> None:
    if sf3d_recipe.jupyter_data_dir is None:
        pytest.skip("HUB3D_TEST_SF3D_ENV: reusing an env, the recipe did not run (CI unsets it)")
    log = sf3d_recipe.log
    for step in ("1/7 Python", "3/7 environment", "6/7 build texture_baker", "7/7 kernelspec"):
        assert f"== {step}" in log, step
    assert "requirements-cpu.txt" in log and "USE_CUDA=0" in log
    # the last step imported every class the config names, and both extensions
    assert "sf3d.system and the 8 classes of the published config import" in log
    spec_file = sf3d_recipe.jupyter_data_dir / "kernels" / "hub3d-sf3d" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert Path(spec["argv"][0]).resolve() == sf3d_recipe.python.resolve()
    assert spec["display_name"] == "Python (hub3d SF3D, CPU)"
    assert spec["env"]["HUB3D_SF3D_SRC"] == str(sf3d_src)
    assert spec["metadata"]["cull_idle_timeout"] == 604800
    timings["recipe --cpu, clean env"] = sf3d_recipe.seconds or 0.0


@pytest.fixture(scope="module")
def model_dir(sf3d_env: Path, sf3d_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tier's reduced checkpoint: its config names a local DINOv2 folder, no CLIP tag."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return build_model(sf3d_env, sf3d_src, tmp_path_factory.mktemp("sf3d-model"), env)


def offline(tmp_path: Path, checkpoint: Path) -> dict[str, str]:
    """A served checkpoint, downloads off, an empty Hugging Face cache and data dir."""
    return {"HUB3D_SF3D_CHECKPOINT": str(checkpoint), "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "hf"), "HUB3D_DATA_DIR": str(tmp_path / "data")}


def variant(model_dir: Path, out: Path, **changes: str) -> Path:
    """A copy of the reduced checkpoint (its weights linked) with config keys changed."""
    out.mkdir()
    (out / "model.safetensors").symlink_to(model_dir / "model.safetensors")
    cfg = yaml.safe_load((model_dir / "config.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        cfg[section][key] = value
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def test_doctor_passes_the_recipe_env(sf3d_env: Path, sf3d_src: Path, model_dir: Path,
                                      tmp_path: Path) -> None:
    rows = doctor(sf3d_env, sf3d_src, **offline(tmp_path, model_dir))
    for name in SF3D_ROWS:
        assert rows[name]["status"] == "ok", rows[name]
    assert rows["torch for SF3D"]["found"].startswith("2.4.1")
    assert rows["SF3D extensions"]["found"] == "built for the CPU (no GPU here)"
    assert f"all 8 of {model_dir / 'config.yaml'} import" in rows["SF3D config classes"]["found"]
    assert rows["SF3D weights"] == {"name": "SF3D weights", "status": "ok", "fix": "",
                                    "found": f"{model_dir} (HUB3D_SF3D_CHECKPOINT)"}
    assert rows["DINOv2 / CLIP"]["status"] == "ok"
    assert rows["DINOv2 / CLIP"]["found"] == (
        f"DINOv2: folder {model_dir / 'dinov2'} present; CLIP ViT-S-32-alt: no pretrained tag, "
        "nothing to fetch")
    # a checkpoint this env loads offline: nothing fails (torch's CUDA 12.1 next to this
    # machine's nvcc 13.0 cannot fail a CPU-only machine)
    assert [r for r in rows.values() if r["status"] == "fail"] == []


def test_doctor_fails_what_the_reduced_checkpoint_cannot_load(
        sf3d_env: Path, sf3d_src: Path, model_dir: Path, tmp_path: Path) -> None:
    gone = variant(model_dir, tmp_path / "no-dinov2", **{
        "image_tokenizer.pretrained_model_name_or_path": str(tmp_path / "gone")})
    row = doctor(sf3d_env, sf3d_src, **offline(tmp_path, gone))["DINOv2 / CLIP"]
    assert row["status"] == "fail"
    assert row["found"].startswith(f"DINOv2: folder {tmp_path / 'gone'} missing (the folder)")
    # a tag this env's open_clip does not have for that model: building the model raises
    tag = variant(model_dir, tmp_path / "bad-tag", **{"image_estimator.pretrain": "laion2b"})
    row = doctor(sf3d_env, sf3d_src, **offline(tmp_path, tag))["DINOv2 / CLIP"]
    assert row["status"] == "fail"
    assert "CLIP ViT-S-32-alt/laion2b: open_clip 2.24.0 has no pretrained tag 'laion2b'" \
        in row["found"]
    # the published tag, offline with an empty cache: the first load cannot get it
    hub = variant(model_dir, tmp_path / "hub-clip", **{"image_estimator.model": "ViT-B-32",
                                                       "image_estimator.pretrain":
                                                       "laion2b_s34b_b79k"})
    row = doctor(sf3d_env, sf3d_src, **offline(tmp_path, hub))["DINOv2 / CLIP"]
    assert row["status"] == "fail"
    assert ("CLIP ViT-B-32/laion2b_s34b_b79k (laion/CLIP-ViT-B-32-laion2B-s34B-b79K): not in "
            f"{tmp_path / 'hf' / 'hub'} and downloads are off (HF_HUB_OFFLINE)") in row["found"]


def test_doctor_reads_the_checkpoint_config(sf3d_env: Path, sf3d_src: Path,
                                            tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    shutil.copy(SF3D_CONFIG, good / "config.yaml")
    text = SF3D_CONFIG.read_text().replace("sf3d.models.network.MaterialMLP",
                                           "sf3d.models.network.MaterialMLPv2")
    (bad / "config.yaml").write_text(text)
    rows = doctor(sf3d_env, sf3d_src, HUB3D_SF3D_CHECKPOINT=str(good))
    assert rows["SF3D config classes"]["status"] == "ok"
    assert str(good / "config.yaml") in rows["SF3D config classes"]["found"]
    row = doctor(sf3d_env, sf3d_src, HUB3D_SF3D_CHECKPOINT=str(bad))["SF3D config classes"]
    assert row["status"] == "fail"
    assert "sf3d.models.network.MaterialMLPv2: AttributeError" in row["found"]
    assert "setup_sf3d_kernel.sh" in row["fix"]
