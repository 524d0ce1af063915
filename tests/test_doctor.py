"""hub3d doctor on recorded outputs of the real tools, and on this machine as it is; the
kernel_setup dry-runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub3d.doctor import (
    explain,
    parse_gcc,
    parse_nvcc,
    parse_smi_header,
    parse_smi_query,
    rows_from_facts,
)
from hub3d.doctor.machine import rebuild_nvcc
from hub3d.models.sf3d import SF3DBackend

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "doctor"
SNAP = "/h/hub/models--x--y/snapshots/0123"
MISMATCH = ("The detected CUDA version (11.8) mismatches the version that was used to compile "
            "PyTorch (12.8)")


def read(name: str) -> str:
    return (DATA / name).read_text()


def facts(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "smi": read("nvidia-smi-rtx6000ada.txt"),
        "smi_query": read("nvidia-smi-query-rtx6000ada.csv"),
        "nvcc": read("nvcc-11.8.txt"),
        "gcc": read("gcc-11-ubuntu2204.txt"),
        "torch": json.loads(read("torch-2.4.1-cu118.json")),
        "sf3d": json.loads(read("sf3d-probe-cu118.json")),
        "rembg_model": "/models/u2net.onnx", "ram_gb": 64.0,
        "sf3d_files": {"checkpoint": "/w", "source": "HUB3D_SF3D_CHECKPOINT", "hf_cache": "/h/hub",
                       "transformers_cache": "/h/hub", "offline": True, "token": False},
        "sf3d_checkpoint": {"kind": "folder", "path": "/w", "config": "/w/config.yaml"},
        "sf3d_deps": {"dinov2": {"kind": "hub", "repo": "facebook/dinov2-large",
                                 "found": f"{SNAP}/model.safetensors"},
                      "clip": {"kind": "hf", "repo": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                               "files": ["open_clip_pytorch_model.bin"],
                               "found": f"{SNAP}/open_clip_pytorch_model.bin"}},
        "server_proxy": None, "disk_free_gb": 120.0,
    }
    return {**base, **over}


def by_name(rows: list) -> dict:
    return {r.name: r for r in rows}


def test_parsers_on_recorded_tools() -> None:
    assert parse_smi_header(read("nvidia-smi-rtx6000ada.txt")) == ("535.183.01", "12.2")
    assert parse_smi_header(read("nvidia-smi-no-driver.txt")) == (None, None)
    assert parse_smi_query(read("nvidia-smi-query-rtx6000ada.csv")) == [
        {"name": "NVIDIA RTX 6000 Ada Generation", "vram_gb": 48.0, "compute_cap": "8.9"}]
    assert len(parse_smi_query(read("nvidia-smi-query-2xa100.csv"))) == 2
    assert parse_nvcc(read("nvcc-11.8.txt")) == "11.8"
    assert parse_nvcc(read("nvcc-12.1.txt")) == "12.1"
    assert parse_nvcc("bash: nvcc: command not found") is None


def test_healthy_cu118_kernel_is_all_ok() -> None:
    rows = rows_from_facts(facts())
    assert [r.name for r in rows if r.status != "ok"] == []
    assert "535.183.01, supports CUDA <= 12.2" in by_name(rows)["NVIDIA driver"].found
    assert "2.4.1+cu118 (CUDA 11.8)" in by_name(rows)["torch"].found


def test_cu128_torch_on_nvcc_118_is_the_mismatch_with_its_fix() -> None:
    unbuilt = sf3d_probe(texture_baker="ModuleNotFoundError: No module named 'texture_baker'")
    del unbuilt["baker_cuda"]
    rows = rows_from_facts(facts(torch=json.loads(read("torch-cu128.json")), sf3d=unbuilt))
    bad = by_name(rows)
    assert bad["CUDA mismatch"].status == "fail"  # the extensions must be built with that nvcc
    assert bad["CUDA mismatch"].found == "nvcc 11.8, torch built for 12.8"
    assert "requirements-cu118.txt" in bad["CUDA mismatch"].fix


def test_mismatch_after_the_extensions_are_built_only_warns() -> None:
    """They load their own compiled code: the system nvcc matters to a rebuild only."""
    row = by_name(rows_from_facts(facts(torch=json.loads(read("torch-cu128.json")))))[
        "CUDA mismatch"]
    assert row.status == "warn" and "built with CUDA: matters only to rebuild them" in row.found


def test_torch_newer_than_the_driver_fails_only_when_torch_cannot_use_it() -> None:
    cu128 = json.loads(read("torch-cu128.json"))  # torch.cuda.is_available() was True
    seen = by_name(rows_from_facts(facts(torch=cu128)))  # driver 535: CUDA <= 12.2
    assert seen["torch vs driver"].status == "warn"
    assert "minor-version compatibility" in seen["torch vs driver"].found
    assert seen["torch"].status == "ok"
    blind = by_name(rows_from_facts(facts(torch={**cu128, "cuda_available": False})))
    assert blind["torch vs driver"].status == "fail"
    assert blind["torch vs driver"].found == "torch CUDA 12.8 > driver 12.2, and torch sees no GPU"
    assert "driver is too old" in blind["torch"].fix


def test_gpus_torch_cannot_see_fail_where_hub3d_puts_sf3d_on_them() -> None:
    pypi = json.loads(read("torch-2.4.1-pypi-cpu.json"))  # 2.4.1+cu121, no GPU on that machine
    hidden = by_name(rows_from_facts(facts(torch=pypi)))["torch"]
    assert hidden.status == "fail" and "nvidia-smi lists 1" in hidden.found
    assert "CUDA_VISIBLE_DEVICES" in hidden.fix and "--devices cpu" in hidden.fix
    cpu_torch = {**pypi, "torch": "2.4.1+cpu", "cuda": None}
    row = by_name(rows_from_facts(facts(torch=cpu_torch)))["torch"]
    assert row.status == "fail" and "CPU build" in row.fix and "requirements-cu118" in row.fix
    on_cpu = by_name(rows_from_facts(facts(torch=cpu_torch, devices="cpu")))["torch"]
    assert on_cpu.status == "ok"
    no_sf3d = by_name(rows_from_facts(facts(torch=cpu_torch, sf3d={"sf3d": False})))["torch"]
    assert no_sf3d.status == "warn"  # nothing goes on a GPU from an env without SF3D


def test_the_nvcc_checked_is_the_one_a_rebuild_uses(tmp_path: Path) -> None:
    assert rebuild_nvcc(tmp_path, "12.1") == "nvcc"
    conda = tmp_path / "cuda-12.1" / "bin" / "nvcc"  # the recipe's conda toolkit
    conda.parent.mkdir(parents=True)
    conda.write_text("")
    assert rebuild_nvcc(tmp_path, "12.1") == str(conda)
    pypi = tmp_path / "cuda" / "bin" / "nvcc"  # its PyPI toolkit (CUDA 13)
    pypi.parent.mkdir(parents=True)
    pypi.write_text("")
    assert rebuild_nvcc(tmp_path, "12.1") == str(pypi)


def test_recognises_the_exact_mismatch_error_text() -> None:
    for text in (MISMATCH, read("build-cuda-mismatch.log")):
        (row,) = explain(text)
        assert (row.name, row.status) == ("CUDA mismatch", "fail")
        assert "nvcc 11.8, torch built for 12.8" == row.found
        assert "rebuild" in row.fix


def test_recognises_a_baker_built_without_cuda() -> None:
    (row,) = explain(read("texture-baker-cpu-only.log"))
    assert row.name == "SF3D extensions" and row.status == "fail"
    assert "USE_CUDA=1" in row.fix and "TORCH_CUDA_ARCH_LIST" in row.fix
    cpu_built = json.loads(read("sf3d-probe-cpu.json"))
    rows = by_name(rows_from_facts(facts(sf3d=cpu_built)))
    assert rows["SF3D extensions"].status == "fail"  # a GPU is here: the baker must use it


def test_no_gpu_machine_warns_with_fixes() -> None:
    rows = by_name(rows_from_facts(facts(smi=None, smi_query=None, nvcc=None,
                                         torch={"error": "ModuleNotFoundError: torch"},
                                         sf3d={"error": "No module named 'sf3d'"},
                                         server_proxy="install it", disk_free_gb=3.0)))
    for name in ("NVIDIA driver", "GPUs", "nvcc", "torch", "SF3D code", "jupyter-server-proxy"):
        assert rows[name].status == "warn" and rows[name].fix, name
    # 3 GB serves jobs; it is too little to install the env and weights
    assert rows["free disk in home"].status == "warn" and "~15 GB" in rows["free disk in home"].fix
    full = by_name(rows_from_facts(facts(disk_free_gb=0.4)))["free disk in home"]
    assert full.status == "fail" and "old jobs" in full.fix


def sf3d_probe(name: str = "sf3d-probe-cu118.json", **over: object) -> dict[str, object]:
    return {**json.loads(read(name)), **over}


def test_cpu_only_machine_runs_sf3d_on_the_cpu() -> None:
    rows = by_name(rows_from_facts(facts(smi=None, smi_query=None, nvcc=read("nvcc-13.0.txt"),
                                         gcc=read("gcc-12.txt"),
                                         torch=json.loads(read("torch-2.4.1-pypi-cpu.json")),
                                         sf3d=json.loads(read("sf3d-probe-cpu.json")))))
    assert rows["SF3D extensions"].status == "ok"
    assert rows["SF3D extensions"].found == "built for the CPU (no GPU here)"
    cpu = rows["SF3D on the CPU"]
    assert cpu.status == "ok" and "~1.5 min a job on 2 cores" in cpu.found and "~9 GB" in cpu.found
    assert "inflate works" not in rows["NVIDIA driver"].fix
    assert "SF3D and inflate run on the CPU" in rows["NVIDIA driver"].fix
    # torch's CUDA 12.1 next to nvcc 13.0 only matters for a CUDA build: not a failure here
    assert rows["CUDA mismatch"].status == "warn"
    assert all(r.status != "fail" for r in rows.values()), rows
    small = by_name(rows_from_facts(facts(smi=None, smi_query=None, ram_gb=4.0,
                                          sf3d=json.loads(read("sf3d-probe-cpu.json")))))
    assert small["SF3D on the CPU"].status == "fail" and "9 GB" in small["SF3D on the CPU"].fix


def test_vram_figure_is_the_backends() -> None:
    row = by_name(rows_from_facts(facts(smi=None, smi_query=None)))["GPUs"]
    assert f"~{SF3DBackend.vram_gb:.0f} GB VRAM" in row.fix and "~7 GB" not in row.fix


def test_torch_older_than_2_4_fails_with_the_cu118_fix() -> None:
    err = "ImportError: cannot import name 'custom_bwd' from 'torch.amp'"
    probe = sf3d_probe(torch="2.1.2+cu118", classes={
        **sf3d_probe()["classes"], "sf3d.models.network.MaterialMLP": err})  # type: ignore[dict-item]
    rows = by_name(rows_from_facts(facts(torch=json.loads(read("torch-cu118.json")), sf3d=probe)))
    old = rows["torch for SF3D"]
    assert old.status == "fail" and "torch >= 2.4" in old.found
    assert "requirements-cu118.txt" in rows["torch for SF3D"].fix
    classes = rows["SF3D config classes"]
    assert classes.status == "fail"
    assert "MaterialMLP" in classes.found and "custom_bwd" in classes.found
    assert "requirements-cu118.txt" in classes.fix


def test_python_the_recipe_would_not_pick_warns_with_the_recipe_fix() -> None:
    """SF3D served end to end on 3.12 (gpytoolbox 0.3.8): the recipe's choice, not a failure."""
    row = by_name(rows_from_facts(facts(sf3d=sf3d_probe(python="3.12.3"))))["SF3D Python"]
    assert row.status == "warn" and row.found.startswith("3.12.3: the recipe builds 3.10 or 3.11")
    assert "--python python3.11" in row.fix and "--conda" in row.fix
    old = by_name(rows_from_facts(facts(sf3d=sf3d_probe(python="3.9.18"))))["SF3D Python"]
    assert old.status == "fail" and "hub3d's worker needs Python >= 3.10" in old.found


def test_setuptools_that_breaks_cpp_extension_fails_with_the_pin() -> None:
    err = "ImportError: cannot import name 'packaging' from 'pkg_resources'"
    unbuilt = sf3d_probe(setuptools="70.0.0", cpp_extension=err,
                         uv_unwrapper="ModuleNotFoundError: No module named 'uv_unwrapper'")
    rows = by_name(rows_from_facts(facts(sf3d=unbuilt)))
    assert rows["extension build"].status == "fail"
    assert "setuptools 70.0.0" in rows["extension build"].found
    assert "setuptools==69.5.1" in rows["extension build"].fix
    # built already: they load their own compiled code, only a rebuild imports cpp_extension
    built = by_name(rows_from_facts(facts(sf3d=sf3d_probe(setuptools="70.0.0",
                                                          cpp_extension=err))))
    assert built["extension build"].status == "warn"
    assert "only a rebuild needs it" in built["extension build"].found


def test_gcc_newer_than_nvcc_accepts() -> None:
    assert parse_gcc(read("gcc-12.txt")) == 12 and parse_gcc(read("gcc-13-ubuntu2404.txt")) == 13
    row = by_name(rows_from_facts(facts(gcc=read("gcc-13-ubuntu2404.txt"))))["gcc vs nvcc"]
    assert row.status == "warn" and "nvcc 11.8 accepts gcc <= 11" in row.found
    assert "CC=gcc-11 CXX=g++-11" in row.fix and "conda-forge" in row.fix
    ok = by_name(rows_from_facts(facts(gcc=read("gcc-12.txt"), nvcc=read("nvcc-12.1.txt"))))
    assert ok["gcc vs nvcc"].status == "ok"


def test_cards_without_bf16_or_without_kernels_fail() -> None:
    t4 = "Tesla T4, 15360, 7.5\n"
    rows = by_name(rows_from_facts(facts(smi_query=t4)))
    t4_row = rows["bf16 on Tesla T4"]
    assert t4_row.status == "warn" and "no native bfloat16" in t4_row.found
    assert ">= 8.0" in t4_row.fix
    assert "torch arch on Tesla T4" not in rows  # cu118 has sm_75 kernels
    b200 = "NVIDIA B200, 183359, 10.0\n"
    row = by_name(rows_from_facts(facts(smi_query=b200)))["torch arch on NVIDIA B200"]
    assert row.status == "fail" and "sm 10.0 not in" in row.found
    assert "CUDA 12.8" in row.fix and "requirements-cu118.txt" not in row.fix
    a100 = by_name(rows_from_facts(facts(smi_query=read("nvidia-smi-query-2xa100.csv"))))
    assert not any(name.startswith(("bf16 on", "torch arch on")) for name in a100)


def test_mismatch_advice_names_one_consistent_pair() -> None:
    """Never a CUDA 12/13 torch and the cu118 file in one sentence."""
    pairs = (("11.8", "12.8"), ("13.0", "12.8"), ("12.1", "11.8"), ("13.0", "12.1"))
    for nvcc, torch_cuda in pairs:
        (row,) = explain(f"The detected CUDA version ({nvcc}) mismatches the version that was "
                         f"used to compile PyTorch ({torch_cuda})")
        for sentence in row.fix.split(". "):
            if "cu118" in sentence:
                assert "11.8" in sentence and "12." not in sentence and "13." not in sentence, row
        if nvcc != "11.8":
            assert f"CUDA {torch_cuda} nvcc" in row.fix or "11.8" in row.fix, row


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub3d", "doctor", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def test_doctor_on_this_machine() -> None:
    out = doctor("--json")
    rows = json.loads(out.stdout)
    names = {r["name"] for r in rows}
    assert {"NVIDIA driver", "GPUs", "nvcc", "torch", "SF3D code", "free disk in home"} <= names
    assert all(r["status"] in ("ok", "warn", "fail") for r in rows)
    assert all(r["fix"] for r in rows if r["status"] != "ok")
    fails = [r for r in rows if r["status"] == "fail"]
    assert out.returncode == (1 if fails else 0), out.stderr
    if any(r["status"] == "warn" for r in rows):
        assert doctor("--strict").returncode == 1


def test_doctor_explains_a_log_file() -> None:
    out = doctor("--log", str(DATA / "build-cuda-mismatch.log"))
    assert out.returncode == 1
    assert "FAIL  CUDA mismatch" in out.stdout and "requirements-cu118.txt" in out.stdout


def dry_run(script: str, *args: str) -> str:
    out = subprocess.run(["bash", str(REPO / "kernel_setup" / script), "--dry-run", *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sf3d_kernel_dry_run_prints_every_step(tmp_path: Path) -> None:
    out = dry_run("setup_sf3d_kernel.sh", "--gpu-query",
                  str(DATA / "nvidia-smi-query-rtx6000ada.csv"), "--env", str(tmp_path / "env"),
                  "--src", str(tmp_path / "sf3d"))
    assert "TORCH_CUDA_ARCH_LIST=8.9" in out
    assert f" -m venv {tmp_path / 'env'}" in out
    assert "+ " + str(tmp_path / "env" / "bin" / "python") + " -m pip install setuptools==69.5.1" \
        in out
    assert "-r " in out and "requirements-cu118.txt" in out
    assert "+ git clone https://github.com/Stability-AI/stable-fast-3d.git" in out
    for ext in ("texture_baker", "uv_unwrapper"):  # built from inside each extension's folder
        assert any(line.startswith(f"+ (cd {tmp_path / 'sf3d' / ext} && env USE_NATIVE_ARCH=0")
                   and "USE_CUDA=1 TORCH_CUDA_ARCH_LIST=8.9" in line
                   and "--no-build-isolation" in line for line in out.splitlines()), ext
    assert "ipykernel install --user --name hub3d-sf3d" in out
    assert "--cull-idle-timeout 604800" in out and "HUB3D_SF3D_SRC=" in out
    assert "sf3d_probe.py --check" in out  # the last step: every config class imports
    assert not (tmp_path / "env").exists()  # nothing ran


def test_sf3d_kernel_dry_run_cpu(tmp_path: Path) -> None:
    out = dry_run("setup_sf3d_kernel.sh", "--cpu", "--env", str(tmp_path / "env"),
                  "--src", str(tmp_path / "sf3d"))
    assert "TORCH_CUDA_ARCH_LIST" not in out and "requirements-cu118.txt" not in out
    assert "kernel_setup/requirements-cpu.txt" in out
    assert sum("USE_CUDA=0" in line for line in out.splitlines()) == 2
    assert '--display-name Python (hub3d SF3D, CPU)' in out


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_sf3d_kernel_refuses_a_python_without_wheels(tmp_path: Path, version: str) -> None:
    found = [shutil.which(f"python{version}")] + sorted(
        str(p) for p in Path("~/.pyenv/versions").expanduser().glob(f"{version}*/bin/python3"))
    python = next((p for p in found if p and not subprocess.run(
        [p, "-V"], capture_output=True).returncode), None)
    if python is None:
        pytest.skip(f"no python{version} on this machine")
    out = subprocess.run(["bash", str(REPO / "kernel_setup" / "setup_sf3d_kernel.sh"),
                          "--dry-run", "--cpu", "--python", python, "--env", str(tmp_path / "e")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"found: Python {version}" in out.stderr
    assert "--python /path/to/python3.11" in out.stderr and "--conda" in out.stderr


def test_sf3d_kernel_dry_run_two_cards_and_conda(tmp_path: Path) -> None:
    out = dry_run("setup_sf3d_kernel.sh", "--conda", "--gpu-query",
                  str(DATA / "nvidia-smi-query-2xa100.csv"), "--env", str(tmp_path / "env"))
    assert "TORCH_CUDA_ARCH_LIST=8.0\n" in out  # deduplicated
    assert "+ conda create -y -p" in out


def test_sf3d_kernel_without_gpu_or_arch_says_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "none.csv"
    empty.write_text("")
    out = subprocess.run(["bash", str(REPO / "kernel_setup" / "setup_sf3d_kernel.sh"),
                          "--dry-run", "--gpu-query", str(empty)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "--arch 8.9" in out.stderr


def test_patch_kernelspec(tmp_path: Path) -> None:
    spec = tmp_path / "kernel.json"
    spec.write_text(json.dumps({"argv": ["python"], "display_name": "x", "language": "python"}))
    subprocess.run([sys.executable, str(REPO / "kernel_setup" / "patch_kernelspec.py"),
                    str(spec), "--cull-idle-timeout", "604800", "--env", "HUB3D_SF3D_SRC=/src"],
                   check=True, capture_output=True, timeout=60)
    data = json.loads(spec.read_text())
    assert data["metadata"]["cull_idle_timeout"] == 604800
    assert data["env"] == {"HUB3D_SF3D_SRC": "/src"}


def test_cuda_toolchain_runs_without_hub3d(tmp_path: Path) -> None:
    """The extension build asks it for a host compiler before hub3d is installed in the env."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH, no venv
    bare = [sys.executable, "-I", "-S"]  # no site-packages, no cwd on sys.path
    no_hub3d = subprocess.run([*bare, "-c", "import hub3d"], cwd=tmp_path, env=clean,
                              capture_output=True, text=True, timeout=60)
    assert "No module named 'hub3d'" in no_hub3d.stderr
    from hub3d.doctor.nvcc_gcc import max_gcc

    for nvcc in ("11.8", "12.1", "12.4", "13.0"):
        out = subprocess.run([*bare, str(REPO / "kernel_setup" / "cuda_toolchain.py"), "max-gcc",
                              nvcc], cwd=tmp_path, env=clean, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert int(out.stdout) == max_gcc(nvcc)
    assert (max_gcc("11.8"), max_gcc("12.1"), max_gcc("13.0")) == (11, 12, 15)


def test_offline_env_not_loaded_here_warns(tmp_path: Path) -> None:
    """The server reads its environment, never the file fetch-weights writes."""
    from hub3d.doctor.host import offline_env
    from hub3d.weights import write_offline_env

    assert offline_env(tmp_path, {}) is None
    path = write_offline_env(tmp_path, {"HF_HUB_OFFLINE": "1", "HF_HOME": "/d/weights/hf"})
    unloaded = offline_env(tmp_path, {"HF_HOME": "/elsewhere"})
    assert unloaded == {"path": str(path), "unset": ["HF_HOME", "HF_HUB_OFFLINE"]}
    row = by_name(rows_from_facts(facts(offline_env=unloaded)))["offline.env"]
    assert row.status == "warn" and "HF_HOME, HF_HUB_OFFLINE not set here" in row.found
    assert f"set -a; . {path}; set +a" in row.fix
    loaded = offline_env(tmp_path, {"HF_HUB_OFFLINE": "1", "HF_HOME": "/d/weights/hf"})
    assert by_name(rows_from_facts(facts(offline_env=loaded)))["offline.env"].status == "ok"


def test_a_fetched_data_dir_needs_no_offline_env_loaded(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What fetch-weights wrote to offline.env is what the server finds in the data dir by
    itself: doctor does not ask for the file to be loaded."""
    from hub3d.doctor import host
    from hub3d.models.files import resolve_files
    from hub3d.models.sf3d import WEIGHTS
    from hub3d.weights import write_offline_env
    from tests.test_catalog import fetched_layout

    for name in ("HF_HOME", "HF_HUB_OFFLINE", "U2NET_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    data = fetched_layout(tmp_path / "data")
    write_offline_env(data, resolve_files(WEIGHTS, data, {}).env)
    facts = host.gather("", data)
    assert facts["offline_env"]["unset"] == []
    write_offline_env(data, {"HUB3D_SAM3D_PYTHON": "/envs/sam3d/bin/python"})  # not in data
    assert host.gather("", data)["offline_env"]["unset"] == ["HUB3D_SAM3D_PYTHON"]
