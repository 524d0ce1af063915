"""The SF3D kernel recipe, run for real: --cpu from a clean state (kernelspec, load check,
doctor in the env it built), and its CUDA branch compiling texture_baker without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.upstream.conftest import RecipeRun, timings
from tests.upstream.sf3d_data import REPO, SF3D_CONFIG

SF3D_ROWS = ("SF3D Python", "torch for SF3D", "extension build", "SF3D code",
             "SF3D config classes", "SF3D extensions", "SF3D on the CPU")


def doctor(python: Path, src: Path, **env: str) -> dict[str, dict]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB3D_")}
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


def test_doctor_passes_the_recipe_env(sf3d_env: Path, sf3d_src: Path, tmp_path: Path) -> None:
    rows = doctor(sf3d_env, sf3d_src, HUB3D_DATA_DIR=str(tmp_path / "data"))
    for name in SF3D_ROWS:
        assert rows[name]["status"] == "ok", rows[name]
    assert rows["torch for SF3D"]["found"].startswith("2.4.1")
    assert rows["SF3D extensions"]["found"] == "built for the CPU (no GPU here)"
    assert "all 8 of the published config import" in rows["SF3D config classes"]["found"]
    # torch's CUDA 12.1 next to this machine's nvcc 13.0 cannot fail a CPU-only machine
    assert all(r["status"] != "fail" for r in rows.values()
               if r["name"] not in ("free disk in home",)), rows


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
