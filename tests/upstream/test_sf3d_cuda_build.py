"""The recipe's CUDA branch without a GPU: build_sf3d_extensions.sh picks nvcc of the torch's own
CUDA release, fetches it into the env, and compiles texture_baker for sm_89 (nvcc needs no GPU).

PyPI carries a whole nvcc only from CUDA 13 on (nvidia-cuda-nvcc-cu11/-cu12 hold just ptxas), so
this env has a CUDA 13 torch; the SF3D env's torch 2.4.1 (CUDA 12.1) cannot be reused for it.
HUB3D_TEST_CUDA_ENV reuses such an env while iterating; .ci/run unsets it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.upstream.conftest import timings
from tests.upstream.sf3d_data import REPO

TORCH = "torch==2.14.1"  # a CUDA 13.0 build on PyPI; the cap pip has here allows it
REUSE = os.environ.get("HUB3D_TEST_CUDA_ENV")


@pytest.fixture(scope="module")
def cuda_torch_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if REUSE:
        return Path(REUSE)
    env = tmp_path_factory.mktemp("cuda-env") / "env"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    out = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", TORCH,
                          "numpy", "wheel"], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    timings[f"CUDA branch: venv with {TORCH}"] = time.monotonic() - started
    return env


@pytest.mark.timeout(3000)
def test_cuda_branch_compiles_texture_baker_for_sm89(cuda_torch_env: Path, sf3d_src: Path,
                                                     tmp_path: Path) -> None:
    python = cuda_torch_env / "bin" / "python"
    src = tmp_path / "src"
    shutil.copytree(sf3d_src / "texture_baker", src / "texture_baker",
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    wheels = tmp_path / "wheels"
    started = time.monotonic()
    # --user-nvcc: take the env's own nvcc even where a system one fits (a hub's usually does not)
    out = subprocess.run(["bash", str(REPO / "kernel_setup" / "build_sf3d_extensions.sh"),
                          "--env", str(cuda_torch_env), "--src", str(src), "--arch", "8.9",
                          "--only", "texture_baker", "--wheel-dir", str(wheels), "--user-nvcc"],
                         capture_output=True, text=True, timeout=2400,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    timings["CUDA branch: nvcc into the env + texture_baker for sm_89"] = (
        time.monotonic() - started)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    torch_cuda = subprocess.run([str(python), "-c", "import torch; print(torch.version.cuda)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert f"installing nvcc {torch_cuda} into the env" in log
    assert "USE_CUDA=1 TORCH_CUDA_ARCH_LIST=8.9" in log
    (wheel,) = wheels.glob("texture_baker-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    (lib,) = site.glob("texture_baker/_C*.so")
    # the library's fatbin holds sm_89 machine code (cuobjdump of the same CUDA major lists it)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--target", str(tmp_path / "cu"),
                    f"nvidia-cuda-cuobjdump=={torch_cuda.split('.')[0]}.*"],
                   check=True, capture_output=True, timeout=600)
    (cuobjdump,) = (tmp_path / "cu").glob("nvidia/*/bin/cuobjdump")
    elves = subprocess.run([str(cuobjdump), "--list-elf", str(lib)], capture_output=True,
                           text=True, timeout=120)
    assert "sm_89" in elves.stdout, elves.stdout + elves.stderr
    # and torch finds CUDA kernels in it, which is what doctor checks on a GPU server
    probe = subprocess.run([str(python), str(REPO / "hub3d" / "doctor" / "sf3d_probe.py")],
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                           text=True, timeout=300)
    facts = json.loads(probe.stdout.splitlines()[-1])
    assert facts["texture_baker"] == "ok", facts
    assert facts["baker_cuda"] is True and facts["baker_cpu"] is True, facts
