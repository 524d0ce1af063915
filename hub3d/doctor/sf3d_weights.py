"""doctor's rows about the files SF3D loads: its checkpoint, and the DINOv2 and CLIP weights that
building the model fetches (what the checkpoint's config.yaml names; the probe reads it).

`find_*` look on disk (gather); `weights_rows` only reads their results (tested on recorded facts).
A FAIL here means the first load cannot get a file; a download that will happen is not one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hub3d.doctor.core import Row
from hub3d.doctor.hf_cache import GATED, cached_file

__all__ = ["find_checkpoint", "find_clip", "find_dinov2", "weights_rows"]

# what transformers' from_pretrained reads from a local folder (one of the weight files)
DINO_CONFIG = "config.json"
DINO_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
CLIP_CACHE = "~/.cache/clip"  # open_clip's folder for weights it fetches by URL (no cache_dir)
FETCHED = ("facebook/dinov2-large", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")  # fetch-weights'
_REPO_ID = re.compile(r"^([\w.-]+/)?[\w.-]+$")  # huggingface_hub's validate_repo_id, in short


def find_checkpoint(checkpoint: str, hf_cache: Path) -> dict[str, Any]:
    """The checkpoint as the backend takes it (its own check), and its config.yaml when on disk."""
    from hub3d.errors import ModelError
    from hub3d.models.sf3d import CONFIG_NAME, WEIGHT_NAME, check_checkpoint

    try:
        resolved = check_checkpoint(checkpoint)
    except ModelError as exc:  # its config, when there, still names the classes to check
        own = Path(checkpoint).expanduser() / CONFIG_NAME
        return {"kind": "folder", "path": checkpoint, "error": str(exc),
                "config": str(own) if own.is_file() else None}
    if Path(resolved).is_dir():
        return {"kind": "folder", "path": resolved, "config": str(Path(resolved) / CONFIG_NAME)}
    config = cached_file(hf_cache, resolved, CONFIG_NAME)
    weights = cached_file(hf_cache, resolved, WEIGHT_NAME)
    return {"kind": "hub", "repo": resolved, "config": str(config) if config else None,
            "found": str(weights) if config and weights else None}


def find_dinov2(value: str | None, cache: Path) -> dict[str, Any]:
    """What `Dinov2Model.from_pretrained(value)` reads: a folder when one is there, else a repo."""
    if value is None:
        return {"kind": "none"}
    folder = Path(value)
    if folder.is_dir() or not _REPO_ID.match(value) or ".." in value or "--" in value:
        lacks = [] if folder.is_dir() else ["the folder"]
        if folder.is_dir():
            lacks += [] if (folder / DINO_CONFIG).is_file() else [DINO_CONFIG]
            lacks += [] if any((folder / n).is_file() for n in DINO_WEIGHTS) else [
                " or ".join(DINO_WEIGHTS[::2])]
        return {"kind": "folder", "path": str(folder.absolute()), "lacks": lacks}
    config = cached_file(cache, value, DINO_CONFIG)
    weights = next((w for n in DINO_WEIGHTS if (w := cached_file(cache, value, n))), None)
    return {"kind": "hub", "repo": value, "found": str(weights) if config and weights else None}


def find_clip(source: dict[str, Any], cache: Path) -> dict[str, Any]:
    """The probe's resolution of the CLIP tag, with the file looked up where it would land."""
    if source.get("kind") == "hf":
        paths = [cached_file(cache, source["repo"], name) for name in source["files"]]
        return {**source, "found": str(paths[-1]) if all(paths) else None}
    if source.get("kind") == "url":
        path = Path(CLIP_CACHE).expanduser() / source["url"].rsplit("/", 1)[-1]
        return {**source, "path": str(path), "found": str(path) if path.is_file() else None}
    return dict(source)


def _download(label: str, repo: str, cache: str, f: dict[str, Any]) -> tuple[str, str, str]:
    """(status, found, fix) for a Hugging Face repo that is not in the cache yet."""
    get = ("`hub3d fetch-weights sf3d` where there is internet, then load the data dir's "
           "offline.env, whose HF_HOME is the cache it fills" if repo in FETCHED or
           repo in GATED else f"`huggingface-cli download {repo}` where there is internet, "
           "into the cache named here")
    if f.get("offline"):
        return ("fail", f"{label}: not in {cache} and downloads are off (HF_HUB_OFFLINE)",
                f"Run {get}; or, where this machine has internet, unset HF_HUB_OFFLINE.")
    if repo in GATED and not f.get("token"):
        return ("fail", f"{label}: not in {cache}; the first load downloads it, but the repo is "
                "gated and no token is set", f"Accept the licence at https://huggingface.co/"
                f"{repo}, then set HF_TOKEN; or run {get}.")
    if repo in GATED:
        return ("warn", f"{label}: not in {cache}; the first load downloads it with your token",
                f"The token's account must have accepted the licence at https://huggingface.co/"
                f"{repo}; or fetch it first: {get}.")
    return "ok", f"{label}: not in {cache}; the first load downloads it", ""


def _dinov2(d: dict[str, Any], f: dict[str, Any]) -> tuple[str, str, str]:
    if d["kind"] == "none":
        return "ok", "DINOv2: the image tokenizer loads no pretrained model", ""
    if d["kind"] == "folder":
        if not d["lacks"]:
            return "ok", f"DINOv2: folder {d['path']} present", ""
        return ("fail", f"DINOv2: folder {d['path']} missing ({', '.join(d['lacks'])})",
                "The checkpoint's config.yaml names that folder in image_tokenizer."
                "pretrained_model_name_or_path: restore it (config.json and the weights, as "
                "save_pretrained writes them), or name a Hugging Face id there.")
    if d["found"]:
        return "ok", f"DINOv2: {d['repo']} cached in {f['transformers_cache']}", ""
    return _download(f"DINOv2 {d['repo']}", d["repo"], f["transformers_cache"], f)


def _clip(w: dict[str, Any], c: dict[str, Any], f: dict[str, Any]) -> tuple[str, str, str]:
    label = f"CLIP {w.get('clip_model')}" + (f"/{w['clip_pretrain']}" if w.get("clip_pretrain")
                                             else "")
    kind = c.get("kind")
    if kind == "none":
        return "ok", f"{label}: no pretrained tag, nothing to fetch", ""
    if kind == "file":
        return "ok", f"{label}: weights file {c['path']}", ""
    if kind == "error":
        return ("fail", f"{label}: {c['error']}"[:300], "Set image_estimator.pretrain in the "
                "checkpoint's config.yaml to one of open_clip's tags for that model, or to '' "
                "(no pretrained CLIP; the SF3D checkpoint's own weights replace it anyway).")
    if kind == "url":
        if c["found"]:
            return "ok", f"{label}: {c['found']}", ""
        found = f"{label}: not in {c['path']}; the first load downloads {c['url']}"
        return ("warn", found + " (HF_HUB_OFFLINE does not stop it)", "Without internet that "
                f"load fails: put the file at {c['path']} first.") if f.get("offline") else (
                    "ok", found, "")
    label += f" ({c['repo']})"
    if c["found"]:
        return "ok", f"{label}: cached in {f['hf_cache']}", ""
    return _download(label, c["repo"], f["hf_cache"], f)


def _checkpoint_row(ck: dict[str, Any], f: dict[str, Any]) -> Row:
    label = f"{ck.get('repo') or ck.get('path')} ({f.get('source', 'checkpoint')})"
    if ck.get("error"):
        return Row("SF3D weights", "fail", ck["error"][:300], "hub3d fetch-weights sf3d (gated "
                   "repo: accept the licence on Hugging Face and set HF_TOKEN first), or point "
                   "HUB3D_SF3D_CHECKPOINT at a folder holding config.yaml and model.safetensors.")
    if ck["kind"] == "folder":
        return Row("SF3D weights", "ok", label)
    if ck.get("found"):
        return Row("SF3D weights", "ok", f"{label}: cached in {f['hf_cache']}")
    status, found, fix = _download(label, ck["repo"], f["hf_cache"], f)
    return Row("SF3D weights", "warn" if status == "ok" else status, found,
               fix or "hub3d fetch-weights sf3d, to have it before the first load.")


def weights_rows(f: dict[str, Any]) -> list[Row]:
    """The checkpoint row, then the DINOv2 / CLIP row (when the probe read the config)."""
    files = f.get("sf3d_files") or {}
    out = [_checkpoint_row(f["sf3d_checkpoint"], files)] if f.get("sf3d_checkpoint") else []
    s = f.get("sf3d") or {}
    w = s.get("weights")
    if not s.get("sf3d"):
        # SF3D is not set up in this env (the "SF3D code" row says so): an optional model, whose
        # missing files are worth a warning, not a failure
        for row in out:
            row.status = "warn" if row.status == "fail" else row.status
        return out
    if not w:
        return out
    if "error" in w:
        return out + [Row("DINOv2 / CLIP", "fail", f"the config does not parse: {w['error']}"
                          [:300], "Fix the checkpoint's config.yaml (upstream reads it with "
                          "OmegaConf into each class's Config), or fetch it again.")]
    found = f.get("sf3d_deps") or {}
    parts = [_dinov2(found["dinov2"], files), _clip(w, found["clip"], files)]
    rank = {"ok": 0, "warn": 1, "fail": 2}
    status = max((p[0] for p in parts), key=rank.__getitem__)
    fixes = dict.fromkeys(p[2] for p in parts if p[0] != "ok" and p[2])  # once each, in order
    return out + [Row("DINOv2 / CLIP", status, "; ".join(p[1] for p in parts), " ".join(fixes))]
