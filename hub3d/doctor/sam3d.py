"""`hub3d doctor`'s SAM-3D rows: what its own environment (HUB3D_SAM3D_PYTHON) can do.

The environment is asked from inside, by running hub3d/models/sam3d_probe.py under its python;
the checkpoints and the caches the first load reads (DINOv2 through torch.hub, MoGe from the
Hugging Face hub) are looked up on disk. A doctor section: `gather` does that I/O into the
"sam3d" key; `rows` (through `sam3d_rows`) does none, so it is tested on recorded probe outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row
from hub3d.doctor.hf_cache import cached_file, hub_cache, is_offline
from hub3d.doctor.machine import parse_smi_query
from hub3d.models.sam3d_env import MIP_RASTERIZER_FIX, PROBE, PYTHON_ENV_VAR, check_checkpoints
from hub3d.models.sam3d_probe import (
    ENV_MODULES,
    EXTRA_OF,
    FLASH_ATTN_CARDS,
    RASTERIZER,
    needs_flash_attn,
)

__all__ = ["SAM3DFiles", "gather", "gather_sam3d", "rows", "sam3d_files", "sam3d_rows"]

RECIPE = "bash kernel_setup/setup_sam3d_env.sh"
NEED_GB = 32.0  # upstream's doc/setup.md: 16-24 GB cards run out of memory in the decoders
MOGE_REPO = "Ruicheng/moge-vitl"
_KAOLIN = "https://nvidia-kaolin.s3.us-east-2.amazonaws.com/torch-2.5.1_cu121.html"
_NAMED = ("kaolin", "pytorch3d", "gsplat")  # a row each; the rest of ENV_MODULES share one


def _install_fix(names: list[str]) -> str:
    extras = sorted({EXTRA_OF.get(n, "dev") for n in names}, key=["dev", "p3d", "inference"].index)
    steps = [(f"PIP_FIND_LINKS={_KAOLIN} " if e == "inference" else "") + f"pip install -e '.[{e}]'"
             for e in extras]
    return (f"in the SAM-3D checkout, with that env's pip, on a GPU node: {'; '.join(steps)} "
            f"(or re-run {RECIPE})")


def _env_row(f: dict[str, Any]) -> Row:
    p = f["probe"]
    if "error" in p:
        return Row("SAM-3D env", "fail", f"{f['python']}: {p['error']}"[:200],
                   f"{PYTHON_ENV_VAR} must be the SAM-3D env's bin/python: {RECIPE}")
    found = f"python {p['python']} at {p['prefix']}"
    if not (p.get("conda_env") and p.get("nvcc")):
        return Row("SAM-3D env", "warn", found + " (no conda env with nvcc: CUDA_HOME will not "
                   "be a CUDA 12.1 toolkit)", f"create it from upstream's default.yml: {RECIPE}")
    return Row("SAM-3D env", "ok", found)


def _torch_row(t: dict[str, Any], smi_cards: list[dict[str, Any]]) -> Row:
    if "version" not in t:
        return Row("SAM-3D torch", "fail", t.get("error", "not installed"),
                   _install_fix(["torch"]))
    found = f"{t['version']} (CUDA {t['cuda'] or 'none'})"
    if not t["cuda"]:  # SAM-3D's kernels (pytorch3d, gsplat, kaolin) run on a GPU only
        return Row("SAM-3D torch", "fail", found + ": a CPU build", "SAM-3D needs torch "
                   "2.5.1+cu121: " + _install_fix(["torch"]))
    if not t.get("cuda_available") and smi_cards:  # hub3d puts SAM-3D on those cards
        return Row("SAM-3D torch", "fail", f"{found}, no GPU visible to it; nvidia-smi lists "
                   f"{len(smi_cards)}", "hub3d puts SAM-3D on the GPUs nvidia-smi lists: check "
                   f"CUDA_VISIBLE_DEVICES, and that the driver supports CUDA {t['cuda']}.")
    if not t.get("cuda_available"):  # the VRAM row fails for the missing GPU
        return Row("SAM-3D torch", "warn", found + ", no GPU visible to it",
                   "Run on a GPU node (a JupyterHub GPU server); SAM-3D cannot run on a CPU.")
    if not str(t["cuda"]).startswith("12."):
        # it may run when the modules below import against it; the recipe installs cu121
        return Row("SAM-3D torch", "warn", found + ": the recipe installs 2.5.1+cu121, "
                   "upstream's tested build", "Nothing to do while the rows below are ok; "
                   "the recipe's build: " + _install_fix(["torch"]))
    return Row("SAM-3D torch", "ok", found)


def _module_rows(bad: dict[str, str], cards: list[str]) -> list[Row]:
    rows = [Row(f"SAM-3D {n}", "fail", bad[n], _install_fix([n])) if n in bad
            else Row(f"SAM-3D {n}", "ok", "imports") for n in _NAMED]
    rest = [n for n in ENV_MODULES if n in bad and n not in _NAMED]
    rows.append(Row("SAM-3D other imports", "fail", "; ".join(f"{n}: {bad[n]}" for n in rest)
                    [:240], _install_fix(rest)) if rest else
                Row("SAM-3D other imports", "ok", f"{len(ENV_MODULES) - len(_NAMED)} modules"))
    if not cards:
        status, found = ("warn", bad["flash_attn"]) if "flash_attn" in bad else ("ok", "imports")
        rows.append(Row("SAM-3D flash_attn", status, found + " (no card seen: upstream needs it"
                        f" on {'/'.join(FLASH_ATTN_CARDS)})", _install_fix(["flash_attn"])))
    elif needs_flash_attn(cards):
        rows.append(Row("SAM-3D flash_attn", "fail", f"{bad['flash_attn']} (upstream switches "
                        f"to it on {cards[0]})", _install_fix(["flash_attn"]))
                    if "flash_attn" in bad else Row("SAM-3D flash_attn", "ok", "imports"))
    else:
        rows.append(Row("SAM-3D flash_attn", "ok", f"not used on {cards[0]}"))
    return rows


def _texture_rows(bad: dict[str, str]) -> list[Row]:
    rows = []
    why = bad.get(RASTERIZER)
    if why is None:
        rows.append(Row("SAM-3D rasterizer", "ok", "mip-splatting diff_gaussian_rasterization"))
    else:
        rows.append(Row("SAM-3D rasterizer", "warn", f"{why}: with_texture=true is refused "
                        "(vertex-colour GLB and PLY work)", MIP_RASTERIZER_FIX))
    why = bad.get("nvdiffrast.torch")
    rows.append(Row("SAM-3D nvdiffrast", "ok", "imports") if why is None else Row(
        "SAM-3D nvdiffrast", "warn", f"{why}: with_texture=true is refused", "only for textured "
        "GLBs: pip install --no-build-isolation 'git+https://github.com/NVlabs/nvdiffrast.git' "
        "in that env (non-commercial licence)"))
    return rows


def _cache_rows(f: dict[str, Any]) -> list[Row]:
    rows = []
    if f.get("checkpoints_error"):
        rows.append(Row("SAM-3D checkpoints", "fail", f["checkpoints_error"],
                        "hub3d fetch-weights sam3d (gated: accept the licence at "
                        "https://huggingface.co/facebook/sam-3d-objects first; ~12 GB)"))
    else:
        rows.append(Row("SAM-3D checkpoints", "ok", f"{f['checkpoints']} (pipeline.yaml, "
                        f"{f.get('ckpt_files', 0)} weight files)"))
    offline = "the first load downloads it (needs internet); offline: hub3d fetch-weights sam3d"
    dino = f.get("dino", [])
    missing = [f"{repo}:{model}" for repo, model, path in dino if not path]
    if not dino:
        rows.append(Row("SAM-3D DINOv2 cache", "warn", "unknown: no Dino embedder found in the "
                        "checkpoints' *.yaml", "get the checkpoints first (row above)"))
    elif missing:
        rows.append(Row("SAM-3D DINOv2 cache", "warn", f"not in {f['torch_hub']}: "
                        + ", ".join(missing), offline))
    else:
        rows.append(Row("SAM-3D DINOv2 cache", "ok", ", ".join(p for *_, p in dino)))
    if f.get("moge"):
        rows.append(Row("SAM-3D MoGe cache", "ok", f["moge"]))
    elif f.get("hf_offline"):  # the first load asks the Hugging Face cache only, and misses
        rows.append(Row("SAM-3D MoGe cache", "fail", f"{MOGE_REPO} not in {f['hf_hub']} and "
                        "downloads are off (HF_HUB_OFFLINE)", "hub3d fetch-weights sam3d where "
                        "there is internet, then load the data dir's offline.env; or, where this "
                        "machine has internet, unset HF_HUB_OFFLINE"))
    else:
        rows.append(Row("SAM-3D MoGe cache", "warn", f"{MOGE_REPO} not in {f['hf_hub']}",
                        offline))
    return rows


def _vram_row(cards: list[dict[str, Any]], allow_low: bool) -> Row:
    if not cards:  # upstream's kernels are CUDA only: it cannot load here
        return Row("SAM-3D VRAM", "fail", "no GPU seen", f"SAM-3D runs on a GPU with >= "
                   f"{NEED_GB:.0f} GB: start a GPU server from the hub's spawn page")
    best = max(cards, key=lambda c: c["vram_gb"])
    found = f"{best['name']} {best['vram_gb']} GB"
    if best["vram_gb"] < NEED_GB and allow_low:  # the backend then loads and tries
        return Row("SAM-3D VRAM", "warn", found + " (HUB3D_SAM3D_ALLOW_LOW_VRAM=1: it tries)",
                   f"Upstream needs >= {NEED_GB:.0f} GB: jobs may run out of memory in the "
                   "decoders; a bigger GPU from the spawn page avoids it")
    if best["vram_gb"] < NEED_GB:
        return Row("SAM-3D VRAM", "fail", found, f"SAM-3D needs >= {NEED_GB:.0f} GB (smaller "
                   "cards run out of memory in the decoders): pick a bigger GPU on the spawn "
                   "page, or HUB3D_SAM3D_ALLOW_LOW_VRAM=1 to try anyway")
    return Row("SAM-3D VRAM", "ok", found)


def sam3d_rows(f: dict[str, Any]) -> list[Row]:
    """Rows from gathered facts (the probe's JSON, paths, nvidia-smi's cards); no I/O."""
    if not f.get("python"):
        # Not a fault: SAM-3D is optional, and an SF3D-only kernel must pass --strict.
        return [Row("SAM-3D env", "ok", f"not set up ({PYTHON_ENV_VAR} unset); for SAM-3D: "
                    f"{RECIPE} builds its env and sets it in the kernelspec and offline.env")]
    rows = [_env_row(f)]
    p = f["probe"]
    torch = p.get("torch") or {}
    cards = torch.get("devices") or f.get("smi_cards") or []
    if "error" not in p:
        bad = p.get("unusable", {})
        rows += [_torch_row(torch, f.get("smi_cards") or []),
                 *_module_rows(bad, [c["name"] for c in cards]), *_texture_rows(bad)]
    return rows + _cache_rows(f) + [_vram_row(cards, bool(f.get("allow_low_vram")))]


def _probe(python: str) -> dict[str, Any]:
    try:
        done = subprocess.run([python, str(PROBE), "facts"], capture_output=True, text=True,
                              timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    try:
        return dict(json.loads(lines[-1])) if lines else {
            "error": (done.stderr.strip() or "no output")[-300:]}
    except ValueError:
        return {"error": done.stdout.strip()[-300:]}


@dataclass(frozen=True)
class SAM3DFiles:
    """Where the SAM-3D server takes its files from."""

    checkpoints: Path  # pipeline.yaml and the weights upstream's inference loads
    torch_hub: Path  # torch.hub's folder: the DINOv2 the configs name
    hf_cache: Path  # huggingface_hub's cache: MoGe


def sam3d_files(env: dict[str, str], data_dir: Path) -> SAM3DFiles:
    """Where the SAM-3D server takes its files from: the model catalog's rule
    (hub3d.models.files) for the checkpoints; the caches as torch.hub and huggingface_hub find
    them in the environment its workers get."""
    from hub3d.models.files import resolve_files
    from hub3d.models.sam3d_weights import WEIGHTS

    files = resolve_files(WEIGHTS, data_dir, env)
    worker = {**env, **files.env}
    folder = Path(files.checkpoint or data_dir / "weights" / WEIGHTS.checkpoint).expanduser()
    hub = Path(worker.get("TORCH_HOME") or "~/.cache/torch").expanduser() / "hub"
    return SAM3DFiles(folder, hub, hub_cache(worker))


def gather_sam3d(env: dict[str, str], data_dir: Path) -> dict[str, Any]:
    from hub3d.models.sam3d_weights import dino_hub_entries

    python = env.get(PYTHON_ENV_VAR, "").strip()
    files = sam3d_files(env, data_dir)
    folder, hub, hf = files.checkpoints, files.torch_hub, files.hf_cache
    f: dict[str, Any] = {"python": python, "checkpoints": str(folder)}
    try:
        check_checkpoints(folder)
        f["ckpt_files"] = len(list(folder.glob("*.ckpt")) + list(folder.glob("*.safetensors")))
    except Exception as exc:  # ModelError says what is wrong and what to run
        f["checkpoints_error"] = str(exc)
    f["torch_hub"] = str(hub)
    entries = dino_hub_entries(folder) if "checkpoints_error" not in f else []
    f["dino"] = [(repo, model, _dino_file(hub, repo, model)) for repo, model in entries]
    f["hf_hub"], f["hf_offline"] = str(hf), is_offline(env)
    f["allow_low_vram"] = env.get("HUB3D_SAM3D_ALLOW_LOW_VRAM") == "1"  # the backend's test
    moge = cached_file(hf, MOGE_REPO, "model.pt")  # as an offline hf_hub_download finds it
    f["moge"] = str(moge) if moge else None
    f["probe"] = _probe(python) if python else {}
    return f


def _dino_file(hub: Path, repo: str, model: str) -> str | None:
    """The weights torch.hub saved for `model`, when its repo is cached beside them."""
    if not (hub / f"{repo.replace('/', '_')}_main").is_dir():
        return None
    found = sorted((hub / "checkpoints").glob(f"{model}*.pth"))
    return str(found[0]) if found else None


def gather(python: str = sys.executable, data_dir: Path | None = None) -> dict[str, Any]:
    """`python` is the serving kernel's; SAM-3D is probed under HUB3D_SAM3D_PYTHON."""
    from hub3d.config import data_dir_from_env

    data = data_dir_from_env(data_dir)
    return {"sam3d": gather_sam3d(dict(os.environ), data)}


def rows(f: dict[str, Any]) -> list[Row]:
    """The section's rows; the cards come from the machine section's nvidia-smi query."""
    cards = parse_smi_query(f.get("smi_query") or "")
    return sam3d_rows({**f.get("sam3d", {}), "smi_cards": cards})
