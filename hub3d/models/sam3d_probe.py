"""What the SAM-3D environment can do, asked from inside it: run as a script by its own python.

Standard library only, and no hub3d imports: the file runs under HUB3D_SAM3D_PYTHON, where hub3d
may not be importable. `python sam3d_probe.py facts` prints one JSON object (the doctor reads it);
`python sam3d_probe.py check` is the last step of kernel_setup/setup_sam3d_env.sh and exits 1,
naming each module that does not import, so a broken environment fails in the recipe and not in
the first job. The module lists mirror upstream at cf06676 (tests/upstream check them).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from typing import Any

__all__ = [
    "ENV_MODULES", "EXTRA_OF", "FLASH_ATTN_CARDS", "MIP_RASTERIZER_FIELDS",
    "NOT_IMPORTED_BY_DEFAULT", "RASTERIZER", "TEXTURE_MODULES", "WORKER_MODULES", "facts",
    "needs_flash_attn", "unusable",
]

# Every third-party module that notebook/inference.py imports at load, with the pipeline modules
# it pulls in (spconv: the default sparse-convolution backend).
ENV_MODULES = (
    "PIL", "astor", "cv2", "easydict", "gradio", "gsplat", "hydra", "igraph", "imageio", "kaolin",
    "lightning", "loguru", "matplotlib", "moge", "numpy", "omegaconf", "open3d", "optree",
    "plotly", "plyfile", "pymeshfix", "pytorch3d", "pyvista", "safetensors", "scipy", "seaborn",
    "spconv", "timm", "torch", "torchvision", "tqdm", "trimesh", "utils3d", "xatlas",
)
# The upstream extra (requirements.<extra>.txt) that brings a module; the rest come with '.[dev]'
# (which installs requirements.txt too).
EXTRA_OF = {"flash_attn": "p3d", "gradio": "inference", "gsplat": "inference",
            "kaolin": "inference", "pytorch3d": "p3d", "seaborn": "inference"}
# Upstream switches attention to flash_attn at import when the card's name has one of these.
FLASH_ATTN_CARDS = ("A100", "H100", "H200")
# Imported only when an environment variable picks another backend, or optional (textures).
NOT_IMPORTED_BY_DEFAULT = ("xformers", "torchsparse", "diff_gaussian_rasterization")
# What a hub3d worker imports besides the model (hub3d's own code comes through PYTHONPATH).
WORKER_MODULES = ("PIL", "cv2", "numpy", "pydantic", "trimesh")
RASTERIZER = "diff_gaussian_rasterization"
TEXTURE_MODULES = ("nvdiffrast.torch", RASTERIZER)
# Keywords upstream's gaussian_render.py passes that only the mip-splatting variant accepts.
MIP_RASTERIZER_FIELDS = ("kernel_size", "subpixel_offset")


def needs_flash_attn(card_names: list[str]) -> bool:
    return any(tag in name for name in card_names for tag in FLASH_ATTN_CARDS)


def unusable(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """name → why it cannot be used here; the rasterizer must also be the mip-splatting one."""
    missing: dict[str, str] = {}
    for name in names:
        try:
            module = importlib.import_module(name)
            if name == RASTERIZER:
                params = inspect.signature(module.GaussianRasterizationSettings).parameters
                lacking = [f for f in MIP_RASTERIZER_FIELDS if f not in params]
                if lacking:
                    missing[name] = (
                        f"GaussianRasterizationSettings has no {', '.join(lacking)}: this is "
                        "graphdeco-inria's variant; SAM-3D bakes with the mip-splatting one")
        except Exception as exc:  # a broken CUDA extension raises OSError, RuntimeError …
            missing[name] = f"{type(exc).__name__}: {exc}"[:200]
    return missing


def _cards() -> tuple[dict[str, Any], list[str]]:
    try:
        import torch
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}, []
    out: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "devices": []}
    for i in range(torch.cuda.device_count() if out["cuda_available"] else 0):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"name": p.name, "vram_gb": round(p.total_memory / 2**30, 1)})
    return out, [d["name"] for d in out["devices"]]


def facts() -> dict[str, Any]:
    torch, cards = _cards()
    wanted = ENV_MODULES + ("flash_attn",) + TEXTURE_MODULES + WORKER_MODULES
    return {"python": sys.version.split()[0], "prefix": sys.prefix,
            "conda_env": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
            "nvcc": os.path.isfile(os.path.join(sys.prefix, "bin", "nvcc")),
            "torch": torch, "unusable": unusable(list(dict.fromkeys(wanted)))}


def check(card_names: list[str]) -> int:
    extra = ("flash_attn",) if needs_flash_attn(card_names) else ()
    names = list(dict.fromkeys(ENV_MODULES + WORKER_MODULES + extra))
    missing = unusable(names)
    for name, why in missing.items():
        print(f"does not import: {name} ({why})", file=sys.stderr)
    print(f"{len(names) - len(missing)} of {len(names)} modules import"
          + (f"; cards: {', '.join(card_names)}" if card_names else "; no GPU visible"))
    return 1 if missing else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["facts"]:
        print(json.dumps(facts()))
    elif sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2:] or _cards()[1]))
    elif sys.argv[1:2] == ["texture"]:
        print(json.dumps(unusable(TEXTURE_MODULES)))
    else:
        print("usage: sam3d_probe.py facts | check [CARD NAME …] | texture", file=sys.stderr)
        sys.exit(2)
