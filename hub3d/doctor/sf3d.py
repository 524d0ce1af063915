"""Rows about SF3D in the kernel env: the Python and torch its code needs, every class its config
names, the extensions, the cards (bf16, the torch's arch list), the caches it loads from."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row, first_file, probe_json
from hub3d.doctor.machine import CU118, explain, parse_smi_query

PROBE = Path(__file__).with_name("sf3d_probe.py")
RECIPE = "kernel_setup/setup_sf3d_kernel.sh"
MIN_TORCH = (2, 4)  # sf3d/models/network.py: from torch.amp import custom_bwd, custom_fwd
PYTHONS = ("3.10", "3.11")  # SF3D's pins (gpytoolbox 0.2.0, ...) have wheels for these only
CPU_RAM_GB = 9  # peak RSS of one SF3D job on the CPU (full-size model, texture 1024)
HF_MODELS = {"DINOv2": "facebook/dinov2-large", "CLIP": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"}
_TRUE = ("1", "true", "yes", "on")


def _version(v: str) -> tuple[int, ...]:
    parts = []
    for piece in v.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _hf_homes(data: Path) -> list[Path]:
    homes = [Path(os.environ["HF_HOME"])] if os.environ.get("HF_HOME") else []
    return homes + [data / "weights" / "hf", Path("~/.cache/huggingface").expanduser()]


def gather(python: str = sys.executable, data_dir: Path | None = None) -> dict[str, Any]:
    data = (data_dir or Path(os.environ.get("HUB3D_DATA_DIR", "~/hub3d-data"))).expanduser()
    ckpt = Path(os.environ.get("HUB3D_SF3D_CHECKPOINT") or data / "weights" / "sf3d")
    offline = (any(os.environ.get(k, "").lower() in _TRUE
                   for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
               or "HF_HUB_OFFLINE=1" in _read(data / "offline.env"))
    cached = {label: any((h / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots").is_dir()
                         for h in _hf_homes(data)) for label, repo in HF_MODELS.items()}
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        ram = None
    config = ckpt / "config.yaml"
    return {
        "sf3d": probe_json([python, str(PROBE)] + (["--config", str(config)]
                                                    if config.is_file() else [])),
        "rembg_model": first_file(
            Path(os.environ.get("U2NET_HOME", "~/.u2net")).expanduser() / "u2net.onnx",
            data / "weights" / "u2net" / "u2net.onnx"),
        "sf3d_weights": first_file(ckpt / "model.safetensors"),
        "hf_offline": offline, "hf_cached": cached, "ram_gb": ram,
    }


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def rows(f: dict[str, Any]) -> list[Row]:
    s = f.get("sf3d") or {}
    gpus = parse_smi_query(f.get("smi_query") or "")
    out: list[Row] = []
    py = s.get("python")
    if py and ".".join(py.split(".")[:2]) not in PYTHONS:
        out.append(Row("SF3D Python", "fail", f"{py}: SF3D's pins have no wheels for it",
                       f"Rebuild the env on Python 3.11: {RECIPE} --python python3.11 (or "
                       "--conda, which makes a Python 3.11 env)."))
    elif py:
        out.append(Row("SF3D Python", "ok", py))
    if "torch" in s and _version(s["torch"]) < MIN_TORCH:
        out.append(Row("torch for SF3D", "fail", f"{s['torch']}: SF3D's code needs torch >= 2.4 "
                       "(it imports custom_bwd, custom_fwd from torch.amp)",
                       f"{CU118}, then rebuild the extensions ({RECIPE})."))
    elif "torch" in s:
        out.append(Row("torch for SF3D", "ok", f"{s['torch']} (>= 2.4)"))
    if "cpp_extension" in s:
        tools = f"setuptools {s.get('setuptools')}"
        out.append(Row("extension build", "ok", f"{tools}, torch.utils.cpp_extension imports")
                   if s["cpp_extension"] == "ok" else Row(
                       "extension build", "fail", f"{tools}: {s['cpp_extension'][:160]}",
                       "python -m pip install setuptools==69.5.1 wheel (what SF3D's README "
                       f"pins for building its extensions), then rerun {RECIPE}."))
    out += _code_rows(s, gpus)
    out += _card_rows(s, gpus)
    out += _cache_rows(f)
    return out


def _code_rows(s: dict[str, Any], gpus: list[dict[str, Any]]) -> list[Row]:
    if "sf3d" not in s:
        return [Row("SF3D code", "warn", str(s.get("torch_error") or s.get("error")
                                              or "not probed")[:160],
                    f"Run {RECIPE} (or install {CU118.split('  ')[0]} in this env).")]
    if not s["sf3d"]:
        return [Row("SF3D code", "warn", str(s.get("sf3d_error", "not importable"))[:160],
                    f"Run {RECIPE}, or set HUB3D_SF3D_SRC to a stable-fast-3d checkout.")]
    out = [Row("SF3D code", "ok", "sf3d.system imports")]
    bad = {k: v for k, v in s.get("classes", {}).items() if v != "ok"}
    if bad:
        path, err = next(iter(bad.items()))
        fix = (f"{CU118}, then rebuild the extensions ({RECIPE})." if "torch.amp" in err else
               f"Reinstall SF3D's pins in this env: rerun {RECIPE}.")
        out.append(Row("SF3D config classes", "fail", f"{len(bad)} of {len(s['classes'])} do "
                       f"not import; {path}: {err[:160]}", fix))
    else:
        out.append(Row("SF3D config classes", "ok", f"all {len(s.get('classes', {}))} of "
                       f"{s.get('classes_from')} import"))
    if s.get("texture_baker") != "ok" or s.get("uv_unwrapper") != "ok":
        err = s.get("texture_baker") if s.get("texture_baker") != "ok" else s.get("uv_unwrapper")
        out += explain(str(err)) or [Row("SF3D extensions", "fail", str(err)[:160],
                                         f"Build texture_baker and uv_unwrapper: {RECIPE}")]
    elif s.get("baker_cuda"):
        out.append(Row("SF3D extensions", "ok", "texture_baker has CUDA kernels"))
    elif gpus:
        out += explain("Could not run 'texture_baker_cpp::rasterize' with arguments from the "
                       "'CUDA' backend")
    else:  # a CPU build is right where there is no GPU: SF3D runs on the CPU
        out.append(Row("SF3D extensions", "ok", "built for the CPU (no GPU here)"))
    return out


def _card_rows(s: dict[str, Any], gpus: list[dict[str, Any]]) -> list[Row]:
    out = []
    arch = s.get("arch_list")
    for g in gpus:
        cap = g["compute_cap"]
        major, minor = (int(x) for x in cap.split(".")[:2])
        if (major, minor) < (8, 0):
            # torch >= 2.4 lets autocast emulate bf16 there (is_bf16_supported counts emulation);
            # older torch refuses it: "Current CUDA Device does not support bfloat16"
            out.append(Row(f"bf16 on {g['name']}", "warn", f"sm {cap}: no native bfloat16; "
                           "SF3D runs under bf16 autocast, which torch 2.4 emulates here (slow)",
                           "For SF3D at full speed pick a GPU with compute capability >= 8.0 "
                           "(A10, A100, L4, L40, RTX 30xx or newer) on the hub's spawn page."))
        if arch and not _runs_on(arch, major, minor):
            fix = ("This torch (CUDA 11.8) has no kernels for it, nor does any cu118 build: on "
                   "this card SF3D needs a torch built for CUDA 12.8 or newer, which this "
                   "recipe does not install; pick a card with compute capability <= 9.0."
                   if str(s.get("torch_cuda", "")).startswith("11") else
                   "Install a torch whose arch list covers this card, then rebuild the "
                   f"extensions ({RECIPE}).")
            out.append(Row(f"torch arch on {g['name']}", "fail",
                           f"sm {cap} not in {' '.join(arch)}", fix))
    return out


def _runs_on(arch: list[str], major: int, minor: int) -> bool:
    """sm_XY cubin for the card's major and a minor <= its own, or PTX (compute_XY) <= it."""
    cap = major * 10 + minor
    for flag in arch:
        kind, _, num = flag.partition("_")
        if not num.isdigit():
            continue
        n = int(num)
        if (kind == "sm" and n // 10 == major and n <= cap) or (kind == "compute" and n <= cap):
            return True
    return False


def _cache_rows(f: dict[str, Any]) -> list[Row]:
    out = []
    cached, offline = f.get("hf_cached") or {}, f.get("hf_offline")
    missing = [f"{k} ({HF_MODELS[k]})" for k, v in cached.items() if not v]
    if missing and offline:
        out.append(Row("DINOv2 / CLIP cache", "fail", f"offline, not cached: {', '.join(missing)}",
                       "SF3D builds both at load: run `hub3d fetch-weights sf3d` where there is "
                       "internet (same data dir), or unset HF_HUB_OFFLINE."))
    elif cached:
        out.append(Row("DINOv2 / CLIP cache", "ok", "cached" if not missing else
                       f"online; downloaded at the first load: {', '.join(missing)}"))
    if not f.get("smi"):
        ram = f.get("ram_gb")
        enough = ram is None or ram >= CPU_RAM_GB
        out.append(Row("SF3D on the CPU", "ok" if enough else "fail",
                       f"no GPU: SF3D runs on the CPU, ~1.5 min a job on 2 cores, peak "
                       f"~{CPU_RAM_GB} GB RAM" + (f" (this machine: {ram:.0f} GB)" if ram else ""),
                       "" if enough else f"Ask for a server with >= {CPU_RAM_GB} GB RAM, or a "
                       "GPU."))
    for key, label, fix in (
        ("rembg_model", "rembg model", "Optional (a weight-free cut-out is used otherwise): "
         "hub3d fetch-weights sf3d"),
        ("sf3d_weights", "SF3D weights", "hub3d fetch-weights sf3d (gated repo: accept the "
         "licence on Hugging Face and set HF_TOKEN first)"),
    ):
        path = f.get(key)
        out.append(Row(label, "ok", str(path)) if path else Row(label, "warn", "missing", fix))
    return out
