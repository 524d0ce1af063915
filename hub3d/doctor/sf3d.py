"""Rows about SF3D in the kernel env: the Python and torch its code needs, every class its config
names, the extensions, the cards (bf16, the torch's arch list); the files it loads are
sf3d_weights.py's rows, looked up where `sf3d_files` says the server takes them from."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row, probe_json
from hub3d.doctor.hf_cache import has_token, hub_cache, is_offline, transformers_cache
from hub3d.doctor.machine import CU118, explain, parse_smi_query
from hub3d.doctor.sf3d_weights import find_checkpoint, find_clip, find_dinov2, weights_rows

PROBE = Path(__file__).with_name("sf3d_probe.py")
RECIPE = "kernel_setup/setup_sf3d_kernel.sh"
MIN_TORCH = (2, 4)  # sf3d/models/network.py: from torch.amp import custom_bwd, custom_fwd
PYTHONS = ("3.10", "3.11")  # SF3D's pins (gpytoolbox 0.2.0, ...) have wheels for these only
MIN_PYTHON = (3, 10)  # hub3d's own floor: the worker runs hub3d's code in this Python
CPU_RAM_GB = 9  # peak RSS of one SF3D job on the CPU (full-size model, texture 1024)


def _version(v: str) -> tuple[int, ...]:
    parts = []
    for piece in v.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@dataclass(frozen=True)
class SF3DFiles:
    """Where the SF3D server takes its files from."""

    checkpoint: str  # a local folder, or a Hugging Face id
    source: str  # which setting chose it, for the row
    hf_cache: Path  # huggingface_hub's cache: a hub checkpoint, open_clip's files
    transformers_cache: Path  # where transformers reads DINOv2 (the same unless legacy vars)
    u2net: Path  # the background-removal model the server uses when present
    offline: bool  # its workers run with HF_HUB_OFFLINE
    token: bool  # and with a Hugging Face token


_SOURCES = {"setting": "HUB3D_SF3D_CHECKPOINT", "fetched": "fetched into the data dir",
            "hub": "the default"}


def sf3d_files(data_dir: Path, environ: Mapping[str, str] | None = None) -> SF3DFiles:
    """Which checkpoint and caches the SF3D server uses: the model catalog's rule
    (hub3d.models.files), and the caches as huggingface_hub and transformers compute them from
    the environment its workers get."""
    from hub3d.models.files import resolve_files
    from hub3d.models.sf3d import WEIGHTS

    base = os.environ if environ is None else environ
    files = resolve_files(WEIGHTS, data_dir, base)
    env = {**base, **files.env}
    # hub3d.imaging.background.rembg_model_path's rule (a test holds them equal); importing it
    # would load OpenCV, which doctor does without
    u2net = Path(env.get("U2NET_HOME", "~/.u2net")).expanduser() / "u2net.onnx"
    return SF3DFiles(files.checkpoint or WEIGHTS.default or "", _SOURCES.get(
        files.source.value, files.source.value), hub_cache(env), transformers_cache(env), u2net,
        is_offline(env), has_token(env))


def gather(python: str = sys.executable, data_dir: Path | None = None) -> dict[str, Any]:
    from hub3d.config import data_dir_from_env

    data = data_dir_from_env(data_dir)
    return gather_sf3d(python, sf3d_files(data))


def gather_sf3d(python: str, files: SF3DFiles) -> dict[str, Any]:
    """The probe run in the kernel env on the config that will be loaded, and the files that
    config names, looked up where the server will look."""
    checkpoint = find_checkpoint(files.checkpoint, files.hf_cache)
    probe = probe_json([python, str(PROBE), "--config", checkpoint.get("config") or ""])
    w = probe.get("weights") or {}
    deps = {} if "dinov2" not in w else {
        "dinov2": find_dinov2(w["dinov2"], files.transformers_cache),
        "clip": find_clip(w.get("clip") or {}, files.hf_cache)}
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        ram = None
    return {
        "sf3d": probe,
        "sf3d_files": {"checkpoint": files.checkpoint, "source": files.source,
                       "hf_cache": str(files.hf_cache),
                       "transformers_cache": str(files.transformers_cache),
                       "offline": files.offline, "token": files.token},
        "sf3d_checkpoint": checkpoint, "sf3d_deps": deps,
        "rembg_model": str(files.u2net) if files.u2net.is_file() else None,
        "ram_gb": ram,
    }


def rows(f: dict[str, Any]) -> list[Row]:
    s = f.get("sf3d") or {}
    gpus = parse_smi_query(f.get("smi_query") or "")
    out: list[Row] = []
    py = s.get("python")
    if py:
        out.append(_python_row(py))
    if "torch" in s and _version(s["torch"]) < MIN_TORCH:
        out.append(Row("torch for SF3D", "fail", f"{s['torch']}: SF3D's code needs torch >= 2.4 "
                       "(it imports custom_bwd, custom_fwd from torch.amp)",
                       f"{CU118}, then rebuild the extensions ({RECIPE})."))
    elif "torch" in s:
        out.append(Row("torch for SF3D", "ok", f"{s['torch']} (>= 2.4)"))
    if "cpp_extension" in s:
        out.append(_build_row(s))
    out += _code_rows(s, gpus)
    out += _card_rows(s, gpus)
    out += weights_rows(f)
    out += _host_rows(f)
    return out


def _python_row(py: str) -> Row:
    version = _version(py)
    if version < MIN_PYTHON:
        return Row("SF3D Python", "fail", f"{py}: hub3d's worker needs Python >= 3.10",
                   f"Rebuild the env on Python 3.11: {RECIPE} --python python3.11 (or --conda).")
    if ".".join(map(str, version)) not in PYTHONS:
        # SF3D's code runs there once its packages are in (gpytoolbox 0.3.8 has cp312 wheels);
        # the rows below say whether they import
        return Row("SF3D Python", "warn", f"{py}: the recipe builds 3.10 or 3.11 (SF3D's pins, "
                   "gpytoolbox 0.2.0 among them, have wheels for those only)",
                   "Nothing to do while the rows below are ok; to rebuild the env the recipe's "
                   f"way: {RECIPE} --python python3.11 (or --conda).")
    return Row("SF3D Python", "ok", py)


def _build_row(s: dict[str, Any]) -> Row:
    tools = f"setuptools {s.get('setuptools')}"
    if s["cpp_extension"] == "ok":
        return Row("extension build", "ok", f"{tools}, torch.utils.cpp_extension imports")
    built = s.get("texture_baker") == "ok" and s.get("uv_unwrapper") == "ok"
    # the built extensions load their own _C: cpp_extension matters only to build them again
    return Row("extension build", "warn" if built else "fail",
               f"{tools}: {s['cpp_extension'][:160]}"
               + (" (texture_baker and uv_unwrapper are built: only a rebuild needs it)"
                  if built else ""),
               "python -m pip install setuptools==69.5.1 wheel (what SF3D's README pins for "
               f"building its extensions), then rerun {RECIPE}.")


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


def _host_rows(f: dict[str, Any]) -> list[Row]:
    out = []
    if not f.get("smi"):
        ram = f.get("ram_gb")
        enough = ram is None or ram >= CPU_RAM_GB
        out.append(Row("SF3D on the CPU", "ok" if enough else "fail",
                       f"no GPU: SF3D runs on the CPU, ~1.5 min a job on 2 cores, peak "
                       f"~{CPU_RAM_GB} GB RAM" + (f" (this machine: {ram:.0f} GB)" if ram else ""),
                       "" if enough else f"Ask for a server with >= {CPU_RAM_GB} GB RAM, or a "
                       "GPU."))
    path = f.get("rembg_model")
    out.append(Row("rembg model", "ok", str(path)) if path else Row(
        "rembg model", "warn", "missing", "Optional (a weight-free cut-out is used otherwise): "
        "hub3d fetch-weights sf3d (it puts u2net under the data dir, where the server finds it)."))
    return out
