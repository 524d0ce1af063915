"""The real SF3D architecture at test size: a reduced copy of upstream's config, random weights.

Same classes as `../shared/upstream/stable-fast-3d-config.yaml` (read from it), smaller widths,
fewer layers and a 32³ tet grid, so one job takes seconds on a CPU. The weights are random: the
only thing these tests replace (see sphere_sf3d.py for the density).
"""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.servers import REPO

UPSTREAM = REPO / ".." / "shared" / "upstream"
REAL_CONFIG = UPSTREAM / "stable-fast-3d-config.yaml"
BUILDER = Path(__file__).with_name("build_sf3d_model.py")
TETS = 32

# Each key path → its reduced value (a field of that class's Config); everything else, every
# class and every head, stays as upstream has it.
REDUCED: dict[str, Any] = {
    "cond_image_size": 112,
    "isosurface_resolution": TETS,
    "camera_embedder.out_channels": 64,
    "image_tokenizer.width": 112,
    "image_tokenizer.height": 112,
    "image_tokenizer.modulation_cond_dim": 64,
    "tokenizer.plane_size": 8,
    "tokenizer.num_channels": 64,
    "backbone.num_attention_heads": 2,
    "backbone.attention_head_dim": 32,
    "backbone.raw_triplane_channels": 64,
    "backbone.triplane_channels": 64,
    "backbone.raw_image_channels": 64,
    "backbone.cross_attention_dim": 64,
    "backbone.num_latents": 16,
    "backbone.num_blocks": 1,
    "backbone.num_basic_blocks": 1,
    "post_processor.in_channels": 64,
    "post_processor.conv_layers": 2,
    "global_estimator.triplane_features": 64,
    # open_clip's smallest ViT (the class's default is ViT-B-32, 151 M parameters, 600 MB)
    "image_estimator.model": "ViT-S-32-alt",
    "image_estimator.hidden_features": 256,  # that model's embedding width
    # Read by build_sf3d_model.py: the random DINOv2 saved for the tokenizer to load.
    "dinov2": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "mlp_ratio": 4, "patch_size": 14, "image_size": 112},
}


def reduced_config() -> dict[str, Any]:
    cfg = copy.deepcopy(yaml.safe_load(REAL_CONFIG.read_text()))
    for dotted, value in REDUCED.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        node[leaf] = value
    return cfg


def tet_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A cube of n³ cells in [0,1]³, each split into 6 tetrahedra along its main diagonal
    (Kuhn), all with the same orientation: the npz layout sf3d/models/isosurface.py reads."""
    side = n + 1
    axis = np.arange(side)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    cells = grid[(grid < n).all(1)]

    def index(p: np.ndarray) -> np.ndarray:
        return (p[:, 0] * side + p[:, 1]) * side + p[:, 2]

    tets = []
    for order in itertools.permutations(range(3)):
        corner, chain = cells.copy(), [index(cells)]
        for step in order:
            corner = corner.copy()
            corner[:, step] += 1
            chain.append(index(corner))
        tets.append(np.stack(chain, 1))
    indices = np.concatenate(tets).astype(np.int64)
    vertices = (grid / n).astype(np.float32)
    a, b, c, d = (vertices[indices[:, k]] for k in range(4))
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) < 0
    indices[flip, 2], indices[flip, 3] = indices[flip, 3], indices[flip, 2].copy()
    return vertices, indices


def ensure_tets(src: Path, n: int = TETS) -> Path:
    """load/tets/<n>_tets.npz in the extracted source (the archive has none)."""
    path = src / "load" / "tets" / f"{n}_tets.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        vertices, indices = tet_grid(n)
        np.savez(path, vertices=vertices, indices=indices)
    return path


def build_model(python: str, src: Path, out: Path, env: dict[str, str]) -> Path:
    """out/ = a local SF3D checkpoint (config.yaml, model.safetensors, dinov2/), random."""
    ensure_tets(src)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "reduced-source.yaml"
    config.write_text(yaml.safe_dump(reduced_config(), sort_keys=False))
    subprocess.run([python, str(BUILDER), "--src", str(src), "--config", str(config),
                    "--out", str(out)], check=True, env=env, timeout=600)
    config.unlink()
    return out


def count_full(python: str, src: Path, env: dict[str, str]) -> dict[str, Any]:
    """Build upstream's own config at full size (random init) and count its parameters."""
    ensure_tets(src, int(yaml.safe_load(REAL_CONFIG.read_text())["isosurface_resolution"]))
    out = subprocess.run([python, str(BUILDER), "--src", str(src), "--config",
                          str(REAL_CONFIG), "--count"], check=True, env=env, timeout=900,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
