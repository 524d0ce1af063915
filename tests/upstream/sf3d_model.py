"""The real SF3D architecture at test size: a reduced copy of upstream's config, random weights.

Same classes as `../shared/upstream/stable-fast-3d-config.yaml` (read from it), smaller widths,
fewer layers and a 32³ tet grid, so one job takes seconds on a CPU. The weights are random: the
only thing these tests replace (see sphere_sf3d.py for the density).
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.upstream.sf3d_data import FULL_RESOLUTION, write_tets
from tests.upstream.sf3d_data import SF3D_CONFIG as REAL_CONFIG

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


def build_model(python: Path, src: Path, out: Path, env: dict[str, str]) -> Path:
    """out/ = a local SF3D checkpoint (config.yaml, model.safetensors, dinov2/), random."""
    write_tets(src, TETS)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "reduced-source.yaml"
    config.write_text(yaml.safe_dump(reduced_config(), sort_keys=False))
    subprocess.run([str(python), str(BUILDER), "--src", str(src), "--config", str(config),
                    "--out", str(out)], check=True, env=env, timeout=600)
    config.unlink()
    return out


def count_full(python: Path, src: Path, env: dict[str, str]) -> dict[str, Any]:
    """Build upstream's own config at full size (random init) and count its parameters."""
    write_tets(src, FULL_RESOLUTION)  # the sf3d_src fixture wrote it already
    out = subprocess.run([str(python), str(BUILDER), "--src", str(src), "--config",
                          str(REAL_CONFIG), "--count"], check=True, env=env, timeout=900,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
