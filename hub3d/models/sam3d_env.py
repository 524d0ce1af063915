"""What the SAM-3D environment offers, checked without importing it into the control plane.

SAM-3D runs under its own interpreter (HUB3D_SAM3D_PYTHON). Whether textured GLBs are possible
depends on two optional CUDA packages in THAT environment, so the control plane asks it once
per executable in a short subprocess and remembers the answer. Importing is not enough for the
rasterizer: upstream's baking calls the mip-splatting variant of diff_gaussian_rasterization
(`GaussianRasterizationSettings(..., kernel_size=, subpixel_offset=)`); graphdeco-inria's
package has the same import name and fails only in baking, minutes into a job.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

from hub3d.errors import InvalidParams, ModelError
from hub3d.models import sam3d_probe
from hub3d.models.sam3d_probe import MIP_RASTERIZER_FIELDS, RASTERIZER, TEXTURE_MODULES

__all__ = [
    "MIP_RASTERIZER_FIELDS",
    "MIP_RASTERIZER_FIX",
    "PROBE",
    "PYTHON_ENV_VAR",
    "RASTERIZER",
    "TEXTURE_MODULES",
    "check_checkpoints",
    "low_vram_message",
    "require_texture_support",
    "texture_support",
]

PYTHON_ENV_VAR = "HUB3D_SAM3D_PYTHON"
MIP_RASTERIZER_FIX = (
    "install the mip-splatting variant there: pip install --no-build-isolation "
    "'git+https://github.com/autonomousvision/mip-splatting.git"
    "#subdirectory=submodules/diff-gaussian-rasterization'"
)
PROBE = Path(sam3d_probe.__file__)  # run as a script: hub3d need not import under that python


@functools.lru_cache(maxsize=8)
def texture_support(python: str) -> dict[str, str]:
    """Modules needed for textured GLBs that do not import under `python`: name → reason.

    Empty means textures are available. Cached: the environment does not change under a
    running server (restart it after installing the packages).
    """
    try:
        done = subprocess.run(
            [python, str(PROBE), "texture"],
            capture_output=True, text=True, timeout=180, check=False,
        )
        missing = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {name: f"could not run {python}: {exc}" for name in TEXTURE_MODULES}
    return {str(k): str(v) for k, v in missing.items()}


def require_texture_support(python: str) -> None:
    """InvalidParams (422) naming what is missing and the way out."""
    missing = texture_support(python)
    if missing:
        why = "; ".join(f"{name} ({reason})" for name, reason in missing.items())
        raise InvalidParams(
            "with_texture=true needs nvdiffrast and diff_gaussian_rasterization in the SAM-3D "
            f"environment, and these are not usable there: {why}. Send with_texture=false for a "
            "vertex-coloured GLB (or output_format=ply), or install both packages into that "
            f"environment and restart the server (for the rasterizer: {MIP_RASTERIZER_FIX})."
        )


def low_vram_message(card: str, free_gb: float, need_gb: float) -> str | None:
    """The refusal for a card with too little free memory; None when it is enough."""
    if free_gb >= need_gb:
        return None
    return (
        f"SAM-3D needs {need_gb:.0f} GB of free GPU memory; {card} has {free_gb:.1f} GB free. "
        "Free the card (stop other models: POST a job to a smaller model or restart hub3d), "
        "or set HUB3D_SAM3D_ALLOW_LOW_VRAM=1 to try anyway (it may run out of memory)."
    )


def card_free_vram(device: str) -> tuple[str, float] | None:
    """(card name, free GB) for `device` inside a worker; None when it cannot be known."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return torch.cuda.get_device_name(device), free / 1024**3
    from hub3d.gpu import query_gpus

    # The worker sees one card as cuda:0; nvidia-smi numbers cards as the host does.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    index = int(visible) if visible.isdigit() else int(device.partition(":")[2] or 0)
    for gpu in query_gpus(fresh=True):
        if gpu.index == index:
            return gpu.name, gpu.vram_free_gb
    return None


def check_checkpoints(folder: Path) -> Path:
    """The pipeline.yaml inside `folder`, with clear errors for the usual layout mistakes."""
    if not folder.is_dir():
        raise ModelError(
            f"SAM-3D checkpoint folder {folder} does not exist. Set HUB3D_SAM3D_CHECKPOINTS to "
            "the folder holding pipeline.yaml (upstream's checkpoints/hf), or run "
            "`hub3d fetch-weights sam3d`."
        )
    config = folder / "pipeline.yaml"
    if not config.is_file():
        nested = sorted(folder.glob("*/pipeline.yaml"))
        hint = (f" It is in {nested[0].parent}: point HUB3D_SAM3D_CHECKPOINTS there." if nested
                else " Download the checkpoints with `hub3d fetch-weights sam3d`.")
        raise ModelError(f"SAM-3D checkpoint folder {folder} has no pipeline.yaml.{hint}")
    if not any(folder.glob("*.ckpt")) and not any(folder.glob("*.safetensors")):
        raise ModelError(
            f"SAM-3D checkpoint folder {folder} has pipeline.yaml but no weight files (*.ckpt); "
            "the download is incomplete: run `hub3d fetch-weights sam3d` again."
        )
    return config
