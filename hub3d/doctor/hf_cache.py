"""The Hugging Face cache as the server's libraries see it: where it is, what is in it, whether
downloads are off and a token is set. Computed from an environment mapping, as huggingface_hub
(0.23, SF3D's pin) and transformers (4.42) compute them at import."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["GATED", "cached_file", "has_token", "hub_cache", "is_offline", "transformers_cache"]

# Repos whose files need an accepted licence and a token (a click-through on huggingface.co);
# doctor cannot ask the hub, so it knows the ones hub3d serves.
GATED = frozenset({"stabilityai/stable-fast-3d", "facebook/sam-3d-objects"})
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's _is_true


def _hf_home(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(env.get("HF_HOME") or Path(xdg) / "huggingface").expanduser()


def hub_cache(env: Mapping[str, str]) -> Path:
    """huggingface_hub's HF_HUB_CACHE: hf_hub_download (SF3D's checkpoint, open_clip) saves here."""
    raw = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    return Path(raw).expanduser() if raw else _hf_home(env) / "hub"


def transformers_cache(env: Mapping[str, str]) -> Path:
    """Where transformers' from_pretrained (SF3D's DINOv2) saves: its deprecated variables win."""
    for key in ("TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE",
                "PYTORCH_PRETRAINED_BERT_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    return hub_cache(env)


def is_offline(env: Mapping[str, str]) -> bool:
    raw = env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or ""
    return raw.upper() in _TRUE


def has_token(env: Mapping[str, str]) -> bool:
    """A token huggingface_hub would send: HF_TOKEN, or the file `huggingface-cli login` wrote."""
    if env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"):
        return True
    token_file = Path(env.get("HF_TOKEN_PATH") or _hf_home(env) / "token").expanduser()
    return token_file.is_file() and bool(token_file.read_text(errors="replace").strip())


def cached_file(cache: Path, repo: str, filename: str) -> Path | None:
    """The file of the repo's `main` as an offline hf_hub_download finds it (refs/main names the
    snapshot), or None."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    try:
        commit = (folder / "refs" / "main").read_text().strip()
    except OSError:
        return None
    path = folder / "snapshots" / commit / filename
    return path if commit and path.is_file() else None
