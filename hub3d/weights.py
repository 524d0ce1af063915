"""`hub3d fetch-weights sf3d|sam3d`: download every file a model needs, then run offline.

Run once on a machine with internet. Checkpoints land under `<data dir>/weights/`, the models
they pull at construction (DINOv2, CLIP, MoGe; u2net for SF3D's background removal) in caches
there, and `<data dir>/offline.env` holds the settings that make later runs use only those files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError

__all__ = ["DINO_DEFAULTS", "DINO_TARGET", "PLANS", "FetchError", "dino_hub_entries",
           "fetch_weights", "register", "write_offline_env"]

U2NET_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"
# SAM-3D builds DINOv2 with torch.hub inside this class; its configs may leave out either
# argument, which then takes the class's default (sam3d_objects/.../embedder/dino.py).
DINO_TARGET = "sam3d_objects.model.backbone.dit.embedder.dino.Dino"
DINO_DEFAULTS = ("facebookresearch/dinov2", "dinov2_vitb14")


class FetchError(Exception):
    """A download that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class HubFiles:
    repo_id: str
    files: tuple[str, ...] = ()  # explicit files; empty → the patterns below, via a snapshot
    patterns: tuple[str, ...] = ()
    into: str | None = None  # folder under weights/; None → the Hugging Face cache (HF_HOME)


PLANS: dict[str, list[HubFiles]] = {
    "sf3d": [
        HubFiles("stabilityai/stable-fast-3d", ("config.yaml", "model.safetensors"), into="sf3d"),
        HubFiles("facebook/dinov2-large",
                 ("config.json", "model.safetensors", "preprocessor_config.json")),
        HubFiles("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", ("open_clip_pytorch_model.bin",)),
    ],
    "sam3d": [
        HubFiles("facebook/sam-3d-objects", patterns=("checkpoints/*",), into="sam3d"),
        HubFiles("Ruicheng/moge-vitl", ("model.pt",)),
    ],
}


def _paths(data_dir: Path) -> dict[str, Path]:
    weights = data_dir / "weights"
    return {"weights": weights, "HF_HOME": weights / "hf", "TORCH_HOME": weights / "torch",
            "U2NET_HOME": weights / "u2net"}


def _refusal(exc: BaseException, repo_id: str, model: str) -> str | None:
    # 0.23's hf_hub_download wraps a refused HEAD in LocalEntryNotFoundError: read the chain
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    response = next((r for e in chain if (r := getattr(e, "response", None)) is not None
                     and getattr(r, "status_code", None) is not None), None)
    status = response.status_code if response is not None else None
    said = response.headers.get("X-Error-Message", "") if response is not None else ""
    again = f"`hub3d fetch-weights {model} --token hf_…` (or set HF_TOKEN)."
    if status == 401 and said == "Invalid credentials in Authorization header":
        return (f"Hugging Face does not know the token (HTTP 401: {said}): copy a read token "
                f"from https://huggingface.co/settings/tokens, then {again}")
    if status in (401, 403) or any(type(e).__name__ == "GatedRepoError" for e in chain):
        return (f"Hugging Face refused {repo_id} (HTTP {status or 'gated'}): accept the licence "
                f"at https://huggingface.co/{repo_id} with your account, then pass a token: "
                f"{again}")
    return None


def _hub_download(item: HubFiles, model: str, weights: Path, cache: Path,
                  token: str | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise FetchError("fetch-weights needs huggingface_hub: pip install 'hub3d[sf3d]' "
                         "(or pip install huggingface_hub)") from None
    local = weights / item.into if item.into else None
    where: dict[str, Any] = {"local_dir": local} if local else {"cache_dir": cache}
    try:
        if item.files:
            for name in item.files:
                path = Path(hf_hub_download(item.repo_id, name, token=token, **where))
            return local or path.parent
        return Path(snapshot_download(item.repo_id, allow_patterns=list(item.patterns),
                                      token=token, **where))
    except Exception as exc:
        message = _refusal(exc, item.repo_id, model)
        if message:
            raise FetchError(message) from exc
        raise FetchError(f"downloading {item.repo_id} failed: {type(exc).__name__}: {exc}. "
                         "Check the connection (or HF_ENDPOINT) and run the command again; "
                         "finished files are kept.") from exc


def _fetch_u2net(folder: Path) -> Path:
    import requests

    from hub3d.fsutil import temp_path_for

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "u2net.onnx"
    if target.is_file() and target.stat().st_size > 0:
        return target
    url = os.environ.get("HUB3D_U2NET_URL", U2NET_URL)
    tmp = temp_path_for(target)
    try:
        with requests.get(url, stream=True, timeout=60) as resp:
            resp.raise_for_status()
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
        os.replace(tmp, target)
    except requests.RequestException as exc:
        raise FetchError(f"downloading u2net (background removal) from {url} failed: {exc}") \
            from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def dino_hub_entries(checkpoints: Path) -> list[tuple[str, str]]:
    """Each (torch.hub repo, model) SAM-3D's configs build DINOv2 from, in the order found."""
    import yaml

    found: list[tuple[str, str]] = []
    for config in sorted(checkpoints.glob("*.yaml")):
        for node in _dino_nodes(yaml.safe_load(config.read_text())):
            entry = (str(node.get("repo_or_dir", DINO_DEFAULTS[0])),
                     str(node.get("dino_model", DINO_DEFAULTS[1])))
            if entry not in found:
                found.append(entry)
    return found


def _dino_nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        here = [node] if node.get("_target_") == DINO_TARGET else []
        return here + [n for value in node.values() for n in _dino_nodes(value)]
    if isinstance(node, list):
        return [n for value in node for n in _dino_nodes(value)]
    return []


def _fetch_torch_hub(repo: str, model: str, torch_home: Path) -> tuple[bool, str]:
    """Fill TORCH_HOME in SAM-3D's own environment (torch lives there, maybe not here)."""
    configured = os.environ.get("HUB3D_SAM3D_PYTHON", "").strip()
    python = configured or sys.executable
    code = f"import torch; torch.hub.load({repo!r}, {model!r}, verbose=False)"
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode == 0:
        return True, f"DINOv2 ({repo}:{model}) cached in {torch_home}"
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    which = "HUB3D_SAM3D_PYTHON" if configured else "this python; HUB3D_SAM3D_PYTHON is not set"
    why = "has no torch" if "No module named 'torch'" in tail else f"failed: {tail}"
    return False, (f"DINOv2 ({repo}:{model}) was NOT cached: {python} ({which}) {why}. Point "
                   "HUB3D_SAM3D_PYTHON at the SAM-3D env's python (kernel_setup/"
                   "setup_sam3d_env.sh makes it) and run `hub3d fetch-weights sam3d` again, or "
                   f"run with that python: TORCH_HOME={torch_home} <its python> -c \"{code}\"")


def write_offline_env(data_dir: Path, settings: dict[str, str]) -> Path:
    """Merge `settings` into <data_dir>/offline.env (KEY=value lines, shell-sourceable)."""
    path = data_dir / "offline.env"
    current: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                current[key.strip()] = value.strip()
    current.update(settings)
    lines = ["# written by `hub3d fetch-weights`; load with: set -a; . ./offline.env; set +a"]
    lines += [f"{k}={v}" for k, v in current.items()]
    from hub3d.fsutil import atomic_write_bytes

    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def fetch_weights(model: str, data_dir: Path, token: str | None) -> list[str]:
    """Download everything for `model`; returns what was done, line by line."""
    os.environ.pop("HF_HUB_OFFLINE", None)  # this command is the one that must go online
    paths = _paths(data_dir)
    cache = paths["HF_HOME"] / "hub"
    done: list[str] = []
    missing: list[str] = []  # what could not be cached: the command then fails
    skip = {"weights"} if model == "sf3d" else {"weights", "U2NET_HOME"}
    settings = {"HF_HUB_OFFLINE": "1", **{k: str(v) for k, v in paths.items() if k not in skip}}
    for item in PLANS[model]:
        where = _hub_download(item, model, paths["weights"], cache, token)
        done.append(f"{item.repo_id} → {where}")
    if model == "sf3d":
        from hub3d.models.sf3d import check_checkpoint

        settings["HUB3D_SF3D_CHECKPOINT"] = check_checkpoint(str(paths["weights"] / "sf3d"))
    else:
        from hub3d.models.sam3d_env import check_checkpoints

        checkpoints = paths["weights"] / "sam3d" / "checkpoints"
        check_checkpoints(checkpoints)
        settings["HUB3D_SAM3D_CHECKPOINTS"] = str(checkpoints)
        entries = dino_hub_entries(checkpoints)
        if not entries:
            done.append(f"no {DINO_TARGET} in {checkpoints}/*.yaml: nothing to fetch through "
                        "torch.hub")
        for repo, name in entries:
            cached, line = _fetch_torch_hub(repo, name, paths["TORCH_HOME"])
            done.append(line)
            if not cached:
                missing.append(f"DINOv2 ({repo}:{name})")
    if model == "sf3d":  # the SAM-3D env has no rembg: its workers never read u2net
        done.append(f"u2net → {_fetch_u2net(paths['U2NET_HOME'])}")
    done.append(f"settings → {write_offline_env(data_dir, settings)}")
    if missing:
        done.append(f"NOT complete: {', '.join(missing)} is missing; {model} cannot load "
                    "offline until it is cached (see above).")
    return done


def _command(args: argparse.Namespace) -> int:
    from hub3d.config import data_dir_from_env

    data_dir = data_dir_from_env(args.dir)
    token = args.token or os.environ.get("HF_TOKEN") or None
    try:
        lines = fetch_weights(args.model, data_dir, token)
    except (FetchError, ModelError) as exc:
        print(f"hub3d fetch-weights: error: {exc}", file=sys.stderr)
        return 1
    complete = not lines[-1].startswith("NOT complete")
    for line in lines if complete else lines[:-1]:
        print(line)
    if not complete:
        print(f"hub3d fetch-weights: error: {lines[-1]}", file=sys.stderr)
        return 1
    print(json.dumps({"offline_env": str(data_dir / "offline.env")}))
    print(f"Offline from now on: set -a; . {data_dir / 'offline.env'}; set +a; "
          f"hub3d serve --data-dir {data_dir} --models {args.model}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fetch-weights", help="download a model's weights for offline serving",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("model", choices=sorted(PLANS), help="which model's files to fetch")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN); the models "
                                        "are gated: accept their licences first")
    parser.add_argument("--dir", help="data dir to fill (default: HUB3D_DATA_DIR or "
                                      "~/hub3d-data)")
    parser.set_defaults(func=_command)
