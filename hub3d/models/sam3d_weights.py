"""SAM-3D-Objects' files: its checkpoints, MoGe, and DINOv2 through torch.hub.

The checkpoints are HUB3D_SAM3D_CHECKPOINTS when set, else what `hub3d fetch-weights sam3d` left
in the data dir, else upstream's layout inside the checkout (<HUB3D_SAM3D_SRC>/checkpoints/hf).
SAM-3D builds DINOv2 with torch.hub inside its Dino embedder class; its configs may leave out
either argument, which then takes the class's default (sam3d_objects/.../embedder/dino.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hub3d.models.files import CACHE_DIRS, Fetched, HubFiles, StepDone, WeightsSpec, weights_dir

__all__ = ["DINO_DEFAULTS", "DINO_TARGET", "WEIGHTS", "dino_hub_entries"]

DINO_TARGET = "sam3d_objects.model.backbone.dit.embedder.dino.Dino"
DINO_DEFAULTS = ("facebookresearch/dinov2", "dinov2_vitb14")
CHECKPOINT_SETTING = "HUB3D_SAM3D_CHECKPOINTS"


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


def _check_fetched(fetched: Fetched) -> StepDone:
    from hub3d.models.sam3d_env import check_checkpoints

    return StepDone(f"checkpoints {check_checkpoints(fetched.checkpoint).parent} are complete")


def _torch_hub(fetched: Fetched) -> StepDone:
    """Fill TORCH_HOME in SAM-3D's own environment (torch lives there, maybe not here)."""
    entries = dino_hub_entries(fetched.checkpoint)
    if not entries:
        return StepDone(f"no {DINO_TARGET} in {fetched.checkpoint}/*.yaml: nothing to fetch "
                        "through torch.hub")
    torch_home = weights_dir(fetched.data_dir) / CACHE_DIRS["TORCH_HOME"]
    lines, missing = [], []
    for repo, model in entries:
        code = f"import torch; torch.hub.load({repo!r}, {model!r}, verbose=False)"
        env = {**fetched.env, "TORCH_HOME": str(torch_home)}
        done = subprocess.run([fetched.python, "-c", code], env=env, capture_output=True,
                              text=True, check=False)
        if done.returncode == 0:
            lines.append(f"DINOv2 ({repo}:{model}) cached in {torch_home}")
            continue
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        which = (fetched.python_from if fetched.python_from.startswith("HUB3D_") else
                 "this python; HUB3D_SAM3D_PYTHON is not set")
        why = "has no torch" if "No module named 'torch'" in tail else f"failed: {tail}"
        lines.append(f"DINOv2 ({repo}:{model}) was NOT cached: {fetched.python} ({which}) {why}."
                     " Point HUB3D_SAM3D_PYTHON at the SAM-3D env's python (kernel_setup/"
                     "setup_sam3d_env.sh makes it) and run `hub3d fetch-weights sam3d` again, or "
                     f"run with that python: TORCH_HOME={torch_home} <its python> -c \"{code}\"")
        missing.append(f"DINOv2 ({repo}:{model})")
    return StepDone("\n".join(lines), ", ".join(missing) or None)


WEIGHTS = WeightsSpec(
    setting=CHECKPOINT_SETTING, checkpoint="sam3d/checkpoints",
    plan=(HubFiles("facebook/sam-3d-objects", patterns=("checkpoints/*",), into="sam3d"),
          HubFiles("Ruicheng/moge-vitl", ("model.pt",))),
    caches=("HF_HOME", "TORCH_HOME"), default_in_source=("HUB3D_SAM3D_SRC", "checkpoints/hf"),
    steps=(_check_fetched, _torch_hub), gated=("facebook/sam-3d-objects",),
)
