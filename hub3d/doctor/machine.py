"""Rows about the machine and the kernel env's torch: driver, GPUs, nvcc, gcc, torch."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row, probe_json, run_cmd
from hub3d.doctor.nvcc_gcc import max_gcc  # the table kernel_setup's build applies, too

CU118 = "python -m pip install -r requirements-cu118.txt  (torch 2.4.1+cu118 wheels)"
_MISMATCH = re.compile(r"detected CUDA version \((\d+\.\d+)\) mismatches the version that was\s+"
                       r"used to compile\s+PyTorch \((\d+\.\d+)\)")
_BAKER_CPU = re.compile(r"Could not run '(texture_baker_cpp|uv_unwrapper)::\w+' with arguments "
                        r"from the 'CUDA' backend")
_TORCH_PROBE = """
import json, sys
out = {"python": sys.version.split()[0], "prefix": sys.prefix}
try:
    import torch
    out.update(torch=torch.__version__, cuda=torch.version.cuda,
               cuda_available=torch.cuda.is_available(), devices=[])
    for i in range(torch.cuda.device_count() if out["cuda_available"] else 0):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"name": p.name, "vram_gb": round(p.total_memory / 2**30, 1)})
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def parse_smi_header(text: str) -> tuple[str | None, str | None]:
    """(driver version, highest CUDA the driver supports) from plain `nvidia-smi`."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def parse_smi_query(text: str) -> list[dict[str, Any]]:
    """`nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and re.fullmatch(r"\d+(\.\d+)?", parts[1]):
            gpus.append({"name": parts[0], "vram_gb": round(float(parts[1]) / 1024, 1),
                         "compute_cap": parts[2]})
    return gpus


def parse_nvcc(text: str) -> str | None:
    """'11.8' from `nvcc --version`."""
    m = re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else None


def parse_gcc(text: str) -> int | None:
    """12 from the first line of `gcc --version` ('gcc (Debian 12.2.0-14) 12.2.0')."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    m = re.search(r"(\d+)\.\d+(\.\d+)?\s*$", first) if first.startswith(("gcc", "cc")) else None
    return int(m.group(1)) if m else None


def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def mismatch_fix(nvcc: str, torch_cuda: str) -> str:
    """What to do when nvcc's CUDA major is not the torch's (never a CUDA 12/13 torch next to
    the cu118 file: each branch names one consistent pair)."""
    if _major(nvcc) == "11":
        return (f"Install the CUDA 11.8 torch in this env ({CU118}), then rebuild SF3D's "
                "extensions (kernel_setup/setup_sf3d_kernel.sh).")
    return (f"Rebuild SF3D's extensions with a CUDA {torch_cuda} nvcc: "
            f"kernel_setup/setup_sf3d_kernel.sh installs nvidia-cuda-nvcc-cu{_major(torch_cuda)}"
            f"=={torch_cuda}.* into the env when the system nvcc is not the torch's CUDA.")


def explain(text: str) -> list[Row]:
    """Rows for known failures found in an error message or build log."""
    rows = []
    m = _MISMATCH.search(text)
    if m:
        nvcc, torch = m.group(1), m.group(2)
        rows.append(Row("CUDA mismatch", "fail", f"nvcc {nvcc}, torch built for {torch}",
                        mismatch_fix(nvcc, torch)))
    m = _BAKER_CPU.search(text)
    if m:
        rows.append(Row("SF3D extensions", "fail", f"{m.group(1)} built without CUDA",
                        "Rebuild them with CUDA on the GPU server: kernel_setup/"
                        "build_sf3d_extensions.sh --env <env> --src <stable-fast-3d> --arch "
                        "<compute cap> (USE_CUDA=1 TORCH_CUDA_ARCH_LIST=<compute cap>; "
                        "setup_sf3d_kernel.sh runs it)."))
    return rows


def rebuild_nvcc(prefix: Path, torch_cuda: str | None) -> str:
    """The nvcc a rebuild would use: the env's own toolchain, where build_sf3d_extensions.sh
    puts it (PyPI's in cuda/, NVIDIA's conda channel's in cuda-<torch's CUDA>/), else PATH's."""
    own = [prefix / "cuda" / "bin" / "nvcc", prefix / f"cuda-{torch_cuda}" / "bin" / "nvcc"]
    return next((str(p) for p in own if p.is_file()), "nvcc")


def gather(python: str = sys.executable, data_dir: Path | None = None) -> dict[str, Any]:
    torch = probe_json([python, "-c", _TORCH_PROBE])
    nvcc = rebuild_nvcc(Path(torch.get("prefix", "/nonexistent")), torch.get("cuda"))
    return {
        "smi": run_cmd(["nvidia-smi"]),
        "smi_query": run_cmd(["nvidia-smi", "--query-gpu=name,memory.total,compute_cap",
                              "--format=csv,noheader,nounits"]),
        "nvcc": run_cmd([nvcc, "--version"]),
        "gcc": run_cmd(["gcc", "--version"]),
        "torch": torch,
        "devices": os.environ.get("HUB3D_DEVICES", "auto"),
    }


def rows(f: dict[str, Any]) -> list[Row]:
    from hub3d.models.sam3d import SAM3DBackend
    from hub3d.models.sf3d import SF3DBackend

    out: list[Row] = []
    driver, drv_cuda = parse_smi_header(f.get("smi") or "")
    gpus = parse_smi_query(f.get("smi_query") or "")
    if driver:
        out.append(Row("NVIDIA driver", "ok", f"{driver}, supports CUDA <= {drv_cuda}"))
    else:
        out.append(Row("NVIDIA driver", "warn", (f.get("smi") or "nvidia-smi not found").strip()
                       .splitlines()[0][:120], "No GPU visible: SF3D and inflate run on the CPU "
                       "here (SF3D ~1.5 min a job on 2 cores, ~9 GB RAM). For SF3D in seconds, "
                       "start a GPU server from the hub's spawn page."))
    out.append(Row("GPUs", "ok", "; ".join(f"{g['name']} {g['vram_gb']} GB (sm {g['compute_cap']})"
                                            for g in gpus)) if gpus else
               Row("GPUs", "warn", "none", f"SF3D on a GPU needs ~{SF3DBackend.vram_gb:.0f} GB "
                   f"VRAM, SAM-3D >= {SAM3DBackend.vram_gb:.0f} GB."))
    nvcc = parse_nvcc(f.get("nvcc") or "")
    t = f.get("torch") or {}
    out.append(Row("nvcc", "ok", nvcc) if nvcc else Row(
        "nvcc", "warn", "not found", "Needed only to build SF3D's extensions with CUDA: "
        "kernel_setup/setup_sf3d_kernel.sh installs the torch's nvcc into the env from PyPI."))
    gcc = parse_gcc(f.get("gcc") or "")
    if nvcc and gcc and gcc > max_gcc(nvcc):
        top = max_gcc(nvcc)
        out.append(Row("gcc vs nvcc", "warn", f"gcc {gcc}; nvcc {nvcc} accepts gcc <= {top}",
                       f"Matters when building SF3D's extensions: CC=gcc-{top} CXX=g++-{top} "
                       f"kernel_setup/setup_sf3d_kernel.sh (apt install g++-{top}; with conda on "
                       f"PATH the recipe installs gcc {top} from conda-forge itself)."))
    elif nvcc and gcc:
        out.append(Row("gcc vs nvcc", "ok", f"gcc {gcc}, nvcc {nvcc} accepts it"))
    if "torch" not in t:
        out.append(Row("torch", "warn", t.get("error", "not installed"),
                       f"Needed for SF3D (not for inflate): {CU118}"))
        return out
    row = _torch_row(t, gpus, drv_cuda, f.get("devices") or "auto")
    if row.status == "fail" and not (f.get("sf3d") or {}).get("sf3d"):
        row.status = "warn"  # SF3D is not set up in this env: nothing is put on a GPU from it
    out.append(row)
    if t["cuda"] and drv_cuda and _cuda(t["cuda"]) > _cuda(drv_cuda):
        if t.get("cuda_available"):  # CUDA's minor-version compatibility: it runs
            out.append(Row("torch vs driver", "warn", f"torch CUDA {t['cuda']} > driver "
                           f"{drv_cuda}; torch sees the GPU (CUDA minor-version compatibility)",
                           "Works while the torch has kernels for the card (no PTX JIT past "
                           f"the driver's CUDA); the tested pair: {CU118}."))
        else:
            out.append(Row("torch vs driver", "fail", f"torch CUDA {t['cuda']} > driver "
                           f"{drv_cuda}, and torch sees no GPU", f"The driver is too old for "
                           f"this torch: {CU118} (needs a driver for CUDA >= 11.8), or ask the "
                           "hub's admins for a newer driver."))
    if t["cuda"] and nvcc and _major(t["cuda"]) != _major(nvcc):
        found = explain(f"The detected CUDA version ({nvcc}) mismatches the version that was "
                        f"used to compile PyTorch ({t['cuda']})")
        built = (f.get("sf3d") or {}).get("baker_cuda")
        for row in found if not gpus or built else []:  # only a CUDA (re)build trips on it
            row.status = "warn"
            row.found += (" (SF3D's extensions are built with CUDA: matters only to rebuild them)"
                          if gpus else " (matters only for a CUDA build)")
        out += found
    return out


def _cuda(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2])


def _torch_row(t: dict[str, Any], gpus: list[dict[str, Any]], drv_cuda: str | None,
               devices: str) -> Row:
    found = f"{t['torch']} (CUDA {t['cuda'] or 'none, CPU build'})"
    if t.get("cuda_available"):
        return Row("torch", "ok", found)
    if not gpus or devices.strip().lower() == "cpu":
        return Row("torch", "ok", found + ", no GPU visible to torch")
    # nvidia-smi lists cards, so hub3d puts SF3D's workers on cuda:N: this torch cannot run there
    if not t["cuda"]:
        why = f"it is a CPU build; {CU118}"
    elif drv_cuda and _cuda(t["cuda"]) > _cuda(drv_cuda):
        why = "the driver is too old for its CUDA (see torch vs driver)"
    else:
        why = "check CUDA_VISIBLE_DEVICES in this environment"
    return Row("torch", "fail", f"{found}, no GPU visible to torch; nvidia-smi lists {len(gpus)}",
               "hub3d puts SF3D on the GPUs nvidia-smi lists, and this torch cannot use them: "
               f"{why}. Or serve on the CPU: --devices cpu (HUB3D_DEVICES=cpu).")
