"""Run with the SF3D env's Python: the real SF3D architecture with random weights, offline.

    python build_sf3d_model.py --src SRC --config CONFIG.yaml --out DIR   # DIR/config.yaml,
        DIR/model.safetensors and DIR/dinov2/ (the vendored Dinov2Model, random init)
    python build_sf3d_model.py --src SRC --config CONFIG.yaml --count     # prints JSON counts

CONFIG may carry a `dinov2:` block (a Dinov2Config's fields): the DINOv2 folder is saved with
those dims and the tokenizer pointed at it. Without one, DINOv2-large's dims are used (what
facebook/dinov2-large's config.json says), as for the real config. CLIP is built by open_clip
with no pretrained tag, so nothing is downloaded. Test data, never shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# facebook/dinov2-large's config.json (the dims the real config's tokenizer loads).
DINOV2_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                "mlp_ratio": 4, "patch_size": 14, "image_size": 518, "layerscale_value": 1.0}


def _config(path: Path, dinov2_dir: Path) -> object:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    dims = dict(cfg.pop("dinov2", None) or DINOV2_LARGE)
    from sf3d.models.tokenizers.dinov2 import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(**dims)).save_pretrained(str(dinov2_dir))
    cfg.image_tokenizer.pretrained_model_name_or_path = str(dinov2_dir)
    cfg.image_estimator.pretrain = ""  # a str field: OmegaConf refuses null
    return cfg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--count", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import save_model
    from sf3d.system import SF3D

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        dinov2 = (args.out / "dinov2") if args.out else Path(tmp) / "dinov2"
        cfg = _config(args.config, dinov2)
        started = time.perf_counter()
        model = SF3D(cfg)
        built_s = time.perf_counter() - started
        if args.count:
            params = sum(p.numel() for p in model.parameters())
            print(json.dumps({"parameters": params, "build_s": round(built_s, 2)}))
            return 0
    assert args.out is not None
    OmegaConf.save(cfg, args.out / "config.yaml")
    save_model(model, str(args.out / "model.safetensors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
