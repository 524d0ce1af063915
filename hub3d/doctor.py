"""`hub3d doctor`: what this machine has for serving, each failing row with its fix.

Parsers are pure functions (tested on recorded tool outputs); torch and SF3D are probed in a
subprocess of the kernel's Python, so a broken install never takes the caller down.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "explain", "format_rows", "parse_nvcc", "parse_smi_header", "parse_smi_query",
           "register", "rows_from_facts", "run_checks"]

CU118 = "python -m pip install -r requirements-cu118.txt  (torch 2.1.2+cu118 wheels)"
_MISMATCH = re.compile(r"detected CUDA version \((\d+\.\d+)\) mismatches the version that was\s+"
                       r"used to compile\s+PyTorch \((\d+\.\d+)\)")
_BAKER_CPU = re.compile(r"Could not run '(texture_baker_cpp|uv_unwrapper)::\w+' with arguments "
                        r"from the 'CUDA' backend")
_TORCH_PROBE = """
import json, sys
out = {"python": sys.version.split()[0]}
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
_SF3D_PROBE = """
import json, os, sys
src = os.environ.get("HUB3D_SF3D_SRC")
if src: sys.path.insert(0, src)
out = {}
try:
    import sf3d.system  # noqa
    out["sf3d"] = True
    import torch, texture_baker  # noqa
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    out["baker_cuda"] = has("texture_baker_cpp::rasterize", "CUDA")
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@dataclass
class Row:
    name: str
    status: str  # ok | warn | fail
    found: str
    fix: str = ""


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


def _major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


def explain(text: str) -> list[Row]:
    """Rows for known failures found in an error message or build log."""
    rows = []
    m = _MISMATCH.search(text)
    if m:
        nvcc, torch = m.group(1), m.group(2)
        rows.append(Row("CUDA mismatch", "fail", f"nvcc {nvcc}, torch built for {torch}",
                        f"Install the torch built for CUDA {nvcc} ({CU118}) in this env, then "
                        "rebuild SF3D's extensions (kernel_setup/setup_sf3d_kernel.sh); or put a "
                        f"CUDA {torch} nvcc first on PATH."))
    m = _BAKER_CPU.search(text)
    if m:
        rows.append(Row("SF3D extensions", "fail", f"{m.group(1)} built without CUDA",
                        "Rebuild on a GPU node: USE_CUDA=1 USE_NATIVE_ARCH=0 "
                        "TORCH_CUDA_ARCH_LIST=<compute cap> pip install --no-build-isolation "
                        "./texture_baker ./uv_unwrapper (kernel_setup/setup_sf3d_kernel.sh)."))
    return rows


def rows_from_facts(f: dict[str, Any]) -> list[Row]:
    """Turn gathered facts (tool outputs, probe JSON, paths) into rows; no I/O here."""
    rows: list[Row] = []
    driver, drv_cuda = parse_smi_header(f.get("smi") or "")
    gpus = parse_smi_query(f.get("smi_query") or "")
    if driver:
        rows.append(Row("NVIDIA driver", "ok", f"{driver}, supports CUDA <= {drv_cuda}"))
    else:
        rows.append(Row("NVIDIA driver", "warn", (f.get("smi") or "nvidia-smi not found").strip()
                        .splitlines()[0][:120], "No GPU visible: CPU only (inflate works). For "
                        "SF3D start a GPU server from the hub's spawn page."))
    rows.append(Row("GPUs", "ok", "; ".join(f"{g['name']} {g['vram_gb']} GB (sm {g['compute_cap']})"
                                             for g in gpus)) if gpus else
                Row("GPUs", "warn", "none", "SF3D needs ~7 GB VRAM, SAM-3D >= 32 GB."))
    nvcc = parse_nvcc(f.get("nvcc") or "")
    t = f.get("torch") or {}
    if nvcc and _major(nvcc) != "11" and not t.get("cuda"):
        rows.append(Row("nvcc", "warn", nvcc, f"The cu118 kernel builds SF3D with an 11.8 nvcc; "
                        f"with nvcc {nvcc} install the matching torch build instead."))
    else:
        rows.append(Row("nvcc", "ok", nvcc) if nvcc else Row(
            "nvcc", "warn", "not found", "Needed only to build SF3D's extensions: `module "
            "load cuda/11.8`, or `conda install -c nvidia cuda-nvcc=11.8`."))
    if "torch" not in t:
        rows.append(Row("torch", "warn", t.get("error", "not installed"),
                        f"Needed for SF3D (not for inflate): {CU118}"))
    else:
        rows.append(Row("torch", "ok", f"{t['torch']} (CUDA {t['cuda'] or 'none, CPU build'})"
                        + ("" if t.get("cuda_available") else ", no GPU visible to torch")))
        if t["cuda"] and drv_cuda and float(t["cuda"]) > float(drv_cuda):
            rows.append(Row("torch vs driver", "fail", f"torch CUDA {t['cuda']} > driver "
                            f"{drv_cuda}", f"The driver is too old for this torch: {CU118}"))
        if t["cuda"] and nvcc and _major(t["cuda"]) != _major(nvcc):
            rows += explain(f"The detected CUDA version ({nvcc}) mismatches the version that was "
                            f"used to compile PyTorch ({t['cuda']})")
    s = f.get("sf3d") or {}
    if not s.get("sf3d"):
        rows.append(Row("SF3D code", "warn", s.get("error", "not importable")[:160],
                        "Run kernel_setup/setup_sf3d_kernel.sh, or set HUB3D_SF3D_SRC to a "
                        "stable-fast-3d checkout."))
    elif "baker_cuda" not in s:
        rows += explain(s.get("error", "")) or [Row(
            "SF3D extensions", "fail", s.get("error", "")[:160],
            "Build texture_baker and uv_unwrapper: kernel_setup/setup_sf3d_kernel.sh")]
    elif not s["baker_cuda"]:
        rows += explain("Could not run 'texture_baker_cpp::rasterize' with arguments from the "
                        "'CUDA' backend")
    else:
        rows.append(Row("SF3D extensions", "ok", "texture_baker has CUDA kernels"))
    for key, label, fix in (
        ("rembg_model", "rembg model", "Optional (a weight-free cut-out is used otherwise): "
         "hub3d fetch-weights sf3d"),
        ("sf3d_weights", "SF3D weights", "hub3d fetch-weights sf3d (gated repo: accept the "
         "licence on Hugging Face and set HF_TOKEN first)"),
    ):
        path = f.get(key)
        rows.append(Row(label, "ok", str(path)) if path else Row(label, "warn", "missing", fix))
    proxy = f.get("server_proxy")
    rows.append(Row("jupyter-server-proxy", "ok", "installed") if proxy is None else
                Row("jupyter-server-proxy", "warn", "missing", proxy))
    free = f.get("disk_free_gb")
    if free is not None:
        status = "ok" if free >= 20 else ("warn" if free >= 5 else "fail")
        rows.append(Row("free disk in home", status, f"{free:.1f} GB",
                        "" if status == "ok" else "SF3D needs ~15 GB (env + weights): clear "
                        "~/.cache/pip and old jobs in the data dir."))
    return rows


def _run(cmd: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> str | None:
    if shutil.which(cmd[0]) is None and not os.path.isabs(cmd[0]):
        return None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return p.stdout + p.stderr


def _probe(python: str, code: str) -> dict[str, Any]:
    out = _run([python, "-c", code], timeout=120) or ""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    try:
        return dict(json.loads(lines[-1])) if lines else {"error": out.strip()[-300:]}
    except ValueError:
        return {"error": out.strip()[-300:]}


def _first_file(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def gather(python: str = sys.executable, data_dir: Path | None = None) -> dict[str, Any]:
    from hub3d.notebook.urls import server_proxy_check

    data = (data_dir or Path(os.environ.get("HUB3D_DATA_DIR", "~/hub3d-data"))).expanduser()
    ckpt = Path(os.environ.get("HUB3D_SF3D_CHECKPOINT") or data / "weights" / "sf3d")
    return {
        "smi": _run(["nvidia-smi"]),
        "smi_query": _run(["nvidia-smi", "--query-gpu=name,memory.total,compute_cap",
                           "--format=csv,noheader,nounits"]),
        "nvcc": _run(["nvcc", "--version"]),
        "torch": _probe(python, _TORCH_PROBE),
        "sf3d": _probe(python, _SF3D_PROBE),
        "rembg_model": _first_file(
            Path(os.environ.get("U2NET_HOME", "~/.u2net")).expanduser() / "u2net.onnx",
            data / "weights" / "u2net" / "u2net.onnx"),
        "sf3d_weights": _first_file(ckpt / "model.safetensors"),
        "server_proxy": server_proxy_check(),
        "disk_free_gb": shutil.disk_usage(Path.home()).free / 2**30,
    }


def run_checks(python: str = sys.executable, data_dir: Path | None = None) -> list[Row]:
    return rows_from_facts(gather(python, data_dir))


def format_rows(rows: list[Row]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for r in rows:
        lines.append(f"{mark[r.status]}  {r.name:<22} {r.found}")
        if r.fix and r.status != "ok":
            lines.append(f"      {'':<22} fix: {r.fix}")
    return "\n".join(lines)


def _doctor(args: argparse.Namespace) -> int:
    rows = run_checks(args.python, Path(args.data_dir) if args.data_dir else None)
    for log in args.log or []:
        rows += explain(Path(log).read_text(errors="replace"))
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else format_rows(rows))
    bad = {"fail", "warn"} if args.strict else {"fail"}
    return 1 if any(r.status in bad for r in rows) else 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("doctor", help="check driver, CUDA, torch, SF3D build, weights")
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--python", default=sys.executable,
                   help="the kernel env's Python to probe (default: this one)")
    p.add_argument("--data-dir", dest="data_dir", help="where weights live (env HUB3D_DATA_DIR)")
    p.add_argument("--log", action="append", metavar="FILE",
                   help="also explain known errors in a build or server log")
    p.set_defaults(func=_doctor)
