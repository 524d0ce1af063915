"""Stand-in for notebook/inference.py of facebookresearch/sam-3d-objects at cf06676.

Mirrors what hub3d relies on: the module reads CONDA_PREFIX at import (KeyError without it);
`Inference(config_file, compile=False)` loads pipeline.yaml, refuses any `_target_` outside the
allow-listed packages (RuntimeError), and keeps the pipeline in `_pipeline`, whose `run(...)` has
the signature of sam3d_objects/pipeline/inference_pipeline_pointmap.py at the same commit.
Outputs, as `run` returns them: the pose decoder's "rotation" (a (1, 4) quaternion, w x y z),
"translation" and "scale" ((1, 3) each) with "coords" and "downsample_factor"; the decoders'
"mesh" and "gaussian" (lists of one); "glb" (trimesh or None), "gs" (the first Gaussian, with
`save_ply(path)`); "pointmap" and "pointmap_colors" (H x W x 3). tests/upstream checks these
names against the real source.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import trimesh
import yaml

os.environ["CUDA_HOME"] = os.environ["CONDA_PREFIX"]  # upstream does this at import
os.environ["LIDRA_SKIP_INIT"] = "true"
_ALLOWED_ROOTS = {"sam3d_objects", "torch", "torchvision", "moge"}


class OutOfMemoryError(RuntimeError):
    """Named as torch.cuda.OutOfMemoryError, which hub3d recognises by its class name."""


def _switch() -> str:
    path = os.environ.get("HUB3D_STANDIN_MODE", "")
    if path and os.path.isfile(path):
        with open(path) as fh:
            return fh.read().strip() or "ok"
    return "ok"


def _record(call: str, **args: Any) -> None:
    path = os.environ.get("HUB3D_STANDIN_CALLS", "")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"call": call, "python": sys.executable, "pid": os.getpid(),
                                 "lidra_skip_init": os.environ.get("LIDRA_SKIP_INIT"),
                                 "conda_prefix": os.environ.get("CONDA_PREFIX"),
                                 "cuda_home": os.environ.get("CUDA_HOME"),
                                 "path0": os.environ.get("PATH", "").split(os.pathsep)[0],
                                 **args}, default=str) + "\n")


def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [str(node["_target_"])] if "_target_" in node else []
        return found + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


class Gaussians:
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.get_xyz = rng.normal(size=(n, 3)).astype(np.float32)

    def save_ply(self, path: str) -> None:
        trimesh.PointCloud(self.get_xyz).export(path, file_type="ply")


class InferencePipelinePointMap:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def run(self, image: Any, mask: Any = None, seed: int | None = None, stage1_only=False,
            with_mesh_postprocess=True, with_texture_baking=True, with_layout_postprocess=True,
            use_vertex_color=False, stage1_inference_steps=None, stage2_inference_steps=None,
            use_stage1_distillation=False, use_stage2_distillation=False, pointmap=None,
            decode_formats=None, estimate_plane=False) -> dict[str, Any]:
        alpha = np.asarray(image)[..., 3]
        _record("run", image_shape=list(np.shape(image)), image_dtype=str(image.dtype),
                alpha_pixels=int((alpha > 0).sum()),  # upstream's crop: every non-zero pixel
                alpha_values=sorted(int(v) for v in np.unique(alpha)), mask=mask, seed=seed,
                stage1_only=stage1_only, with_mesh_postprocess=with_mesh_postprocess,
                with_texture_baking=with_texture_baking,
                with_layout_postprocess=with_layout_postprocess,
                use_vertex_color=use_vertex_color, stage1_inference_steps=stage1_inference_steps,
                stage2_inference_steps=stage2_inference_steps,
                use_stage1_distillation=use_stage1_distillation,
                use_stage2_distillation=use_stage2_distillation, pointmap=pointmap,
                decode_formats=decode_formats, estimate_plane=estimate_plane)
        if _switch() == "oom":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB.")
        glb = None if _switch() == "empty" else trimesh.creation.box()
        gaussian = Gaussians(64)
        height, width = np.shape(image)[:2]
        return {"coords": np.zeros((8, 4), dtype=np.int32), "downsample_factor": 1,
                "rotation": np.array([[1.0, 0.0, 0.0, 0.0]]), "translation": np.zeros((1, 3)),
                "scale": np.ones((1, 3)), "mesh": [glb], "gaussian": [gaussian], "glb": glb,
                "gs": gaussian, "pointmap": np.zeros((height, width, 3), dtype=np.float32),
                "pointmap_colors": np.zeros((height, width, 3), dtype=np.float32)}


class Inference:
    def __init__(self, config_file: str, compile: bool = False) -> None:
        with open(config_file) as fh:
            config = yaml.safe_load(fh)
        for target in _targets(config):
            if target.split(".", 1)[0] not in _ALLOWED_ROOTS:
                raise RuntimeError(f"target '{target}' is not allowed to be hydra instantiated")
        config["workspace_dir"] = os.path.dirname(config_file)
        _record("Inference", config_file=config_file, compile=compile)
        self._pipeline = InferencePipelinePointMap(config)
