"""hub3d doctor on recorded outputs of the real tools, and on this machine as it is; the
kernel_setup dry-runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hub3d.doctor import explain, parse_nvcc, parse_smi_header, parse_smi_query, rows_from_facts

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "doctor"
MISMATCH = ("The detected CUDA version (11.8) mismatches the version that was used to compile "
            "PyTorch (12.8)")


def read(name: str) -> str:
    return (DATA / name).read_text()


def facts(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "smi": read("nvidia-smi-rtx6000ada.txt"),
        "smi_query": read("nvidia-smi-query-rtx6000ada.csv"),
        "nvcc": read("nvcc-11.8.txt"),
        "torch": json.loads(read("torch-cu118.json")),
        "sf3d": {"sf3d": True, "baker_cuda": True},
        "rembg_model": "/models/u2net.onnx", "sf3d_weights": "/w/model.safetensors",
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
    assert "2.1.2+cu118 (CUDA 11.8)" in by_name(rows)["torch"].found


def test_cu128_torch_on_nvcc_118_is_the_mismatch_with_its_fix() -> None:
    rows = rows_from_facts(facts(torch=json.loads(read("torch-cu128.json"))))
    bad = by_name(rows)
    assert bad["CUDA mismatch"].status == "fail"
    assert bad["CUDA mismatch"].found == "nvcc 11.8, torch built for 12.8"
    assert "requirements-cu118.txt" in bad["CUDA mismatch"].fix
    # and a driver older than the torch's CUDA is its own failure
    assert bad["torch vs driver"].status == "fail"


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
    rows = by_name(rows_from_facts(facts(sf3d={"sf3d": True, "baker_cuda": False})))
    assert rows["SF3D extensions"].status == "fail"


def test_no_gpu_machine_warns_with_fixes() -> None:
    rows = by_name(rows_from_facts(facts(smi=None, smi_query=None, nvcc=None,
                                         torch={"error": "ModuleNotFoundError: torch"},
                                         sf3d={"error": "No module named 'sf3d'"},
                                         server_proxy="install it", disk_free_gb=3.0)))
    for name in ("NVIDIA driver", "GPUs", "nvcc", "torch", "SF3D code", "jupyter-server-proxy"):
        assert rows[name].status == "warn" and rows[name].fix, name
    assert rows["free disk in home"].status == "fail"


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
    assert f"+ python3 -m venv {tmp_path / 'env'}" in out
    assert "-r " in out and "requirements-cu118.txt" in out
    assert "+ git clone https://github.com/Stability-AI/stable-fast-3d.git" in out
    for ext in ("texture_baker", "uv_unwrapper"):
        assert any("USE_CUDA=1 USE_NATIVE_ARCH=0 TORCH_CUDA_ARCH_LIST=8.9" in line
                   and line.endswith(f"/sf3d/{ext}") for line in out.splitlines()), ext
    assert "ipykernel install --user --name hub3d-sf3d" in out
    assert "--cull-idle-timeout 604800" in out and "HUB3D_SF3D_SRC=" in out
    assert not (tmp_path / "env").exists()  # nothing ran


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
