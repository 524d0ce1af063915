"""Stand-in for sf3d/system.py of Stability-AI/stable-fast-3d at ff21fc4.

`SF3D.from_pretrained(path_or_repo_id, config_name, weight_name)` (local folder, else a
Hugging Face download through huggingface_hub, as upstream), `.to()`, `.eval()`, and
`run_image(image, bake_resolution, remesh, vertex_count, estimate_illumination)` returning
(trimesh.Trimesh, dict). Upstream returns a 0-vertex mesh when it finds nothing; `empty` mode
does the same, and `oom` mode raises a class named like torch.cuda.OutOfMemoryError.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import trimesh
import yaml
from PIL import Image

from sf3d._standin import mode, record


class OutOfMemoryError(RuntimeError):
    """Named as torch.cuda.OutOfMemoryError, which hub3d recognises by its class name."""


class SF3D:
    def __init__(self, cfg: dict[str, Any], weight_path: str) -> None:
        self.cfg, self.weight_path, self.device = cfg, weight_path, "cpu"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, config_name: str,
                        weight_name: str) -> SF3D:
        if os.path.isdir(pretrained_model_name_or_path):
            config_path = os.path.join(pretrained_model_name_or_path, config_name)
            weight_path = os.path.join(pretrained_model_name_or_path, weight_name)
        else:
            from huggingface_hub import hf_hub_download

            config_path = hf_hub_download(repo_id=pretrained_model_name_or_path,
                                          filename=config_name)
            weight_path = hf_hub_download(repo_id=pretrained_model_name_or_path,
                                          filename=weight_name)
        with open(config_path) as fh:
            cfg = yaml.safe_load(fh)
        record("from_pretrained", path=pretrained_model_name_or_path, config_name=config_name,
               weight_name=weight_name, hf_hub_offline=os.environ.get("HF_HUB_OFFLINE"),
               hf_home=os.environ.get("HF_HOME"), u2net_home=os.environ.get("U2NET_HOME"))
        return cls(cfg, weight_path)

    def to(self, device: str) -> SF3D:
        self.device = str(device)
        record("to", device=self.device)
        return self

    def eval(self) -> SF3D:
        return self

    def run_image(self, image: Image.Image, bake_resolution: int,
                  remesh: Literal["none", "triangle", "quad"] = "none", vertex_count: int = -1,
                  estimate_illumination: bool = False) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        if image.mode != "RGBA":
            raise ValueError("Image must be in RGBA mode")
        record("run_image", image_mode=image.mode, image_size=list(image.size),
               bake_resolution=bake_resolution, remesh=remesh, vertex_count=vertex_count,
               estimate_illumination=estimate_illumination, device=self.device)
        switch = mode()
        if switch == "oom":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
                                   "total capacity of 47.50 GiB of which 1.10 GiB is free.")
        if switch.startswith("sleep:"):
            time.sleep(float(switch.partition(":")[2]))
        if switch == "empty":
            return trimesh.Trimesh(), {}
        mesh = trimesh.creation.icosphere(subdivisions=2)
        mesh.visual.vertex_colors = [180, 60, 60, 255]
        return mesh, {}
