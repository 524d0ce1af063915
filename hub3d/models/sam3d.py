"""SAM-3D-Objects (facebookresearch/sam-3d-objects) as a hub3d backend.

It runs in its own Python environment (CUDA 12.1 / torch 2.5.1): the pool starts its workers with
HUB3D_SAM3D_PYTHON. The code comes from a checkout named by HUB3D_SAM3D_SRC; the weights from
HUB3D_SAM3D_CHECKPOINTS (default: <checkout>/checkpoints/hf), through upstream's own
`notebook/inference.py` `Inference`, which vets every `_target_` in pipeline.yaml.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from hub3d import formats
from hub3d.errors import ModelError, NoObjectDetected
from hub3d.fsutil import atomic_write_bytes, temp_path_for
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter
from hub3d.models.sam3d_env import (
    MIP_RASTERIZER_FIX,
    PYTHON_ENV_VAR,
    TEXTURE_MODULES,
    card_free_vram,
    check_checkpoints,
    low_vram_message,
    require_texture_support,
)
from hub3d.models.sam3d_probe import unusable
from hub3d.models.sam3d_weights import CHECKPOINT_SETTING, WEIGHTS
from hub3d.models.upstream import add_source_tree, map_run_error

__all__ = ["SAM3DBackend", "SAM3DParams", "run_flags"]



class SAM3DParams(GenerateParams):
    """SAM-3D's own knobs: it takes no texture size, remesh or framing parameters."""

    with_texture: bool = Field(False, description="bake a texture into the GLB (needs optional"
                               " packages in the SAM-3D environment); false: vertex colours")
    stage1_inference_steps: int | None = Field(None, ge=1, le=200,
                                               description="null: upstream's default")
    stage2_inference_steps: int | None = Field(None, ge=1, le=200,
                                               description="null: upstream's default")


def run_flags(params: SAM3DParams) -> dict[str, Any]:
    """Every `pipeline.run` flag, explicitly: upstream's defaults drift between versions."""
    textured = params.output_format == "glb" and params.with_texture
    return {
        "stage1_only": False,
        "with_mesh_postprocess": textured,
        "with_texture_baking": textured,
        # Refines only the object's pose in the scene; hub3d exports the object in its own frame.
        "with_layout_postprocess": False,
        "use_vertex_color": not textured,
        "stage1_inference_steps": params.stage1_inference_steps,
        "stage2_inference_steps": params.stage2_inference_steps,
        "use_stage1_distillation": False,
        "use_stage2_distillation": False,
        "pointmap": None,
        "decode_formats": None,
        "estimate_plane": False,
    }


class SAM3DBackend(Backend):
    name = "sam3d"
    description = "SAM 3D Objects (Meta): one masked object to Gaussians (PLY) or a GLB mesh"
    params_model: ClassVar[type[GenerateParams]] = SAM3DParams
    device_kind = "cuda"
    vram_gb = 32.0
    python_env_var = PYTHON_ENV_VAR
    weights = WEIGHTS
    native_formats = ("glb", "ply")
    doctor_section = "hub3d.doctor.sam3d"

    @classmethod
    def check_request(cls, params: GenerateParams, *, python: str) -> None:
        assert isinstance(params, SAM3DParams)
        if params.output_format == "glb" and params.with_texture:
            require_texture_support(python)

    def load(self, device: str) -> None:
        use_own_env()
        os.environ.setdefault("LIDRA_SKIP_INIT", "true")
        self._check_vram(device)
        root = add_source_tree("HUB3D_SAM3D_SRC", "notebook/inference.py",
                               "facebookresearch/sam-3d-objects")
        if root is None:
            raise ModelError(
                "set HUB3D_SAM3D_SRC to a checkout of github.com/facebookresearch/sam-3d-objects "
                f"(installed into the environment {PYTHON_ENV_VAR} names)"
            )
        raw = os.environ.get(CHECKPOINT_SETTING, "").strip()
        inside = WEIGHTS.default_in_source[1] if WEIGHTS.default_in_source else ""
        config = check_checkpoints(Path(raw).expanduser() if raw else root / inside)
        inference_cls = _import_inference(root / "notebook" / "inference.py")
        try:
            self.inference = inference_cls(str(config), compile=False)
        except Exception as exc:
            mapped = map_run_error(exc, device, "SAM-3D")
            if mapped is not exc:
                raise ModelError(f"loading SAM-3D failed: {mapped}") from exc
            raise
        self.pipeline = self.inference._pipeline  # run() is where every flag can be set
        self.device, self.config = device, config

    @staticmethod
    def _check_vram(device: str) -> None:
        if not device.startswith("cuda") or os.environ.get("HUB3D_SAM3D_ALLOW_LOW_VRAM") == "1":
            return
        found = card_free_vram(device)
        if found is not None:
            message = low_vram_message(found[0], found[1], SAM3DBackend.vram_gb)
            if message:
                raise ModelError(message)

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        params = job.params
        assert isinstance(params, SAM3DParams)
        if params.output_format == "glb" and params.with_texture:
            _require_texture_here()
        spent: dict[str, float] = {}
        report("preprocessing", "object mask" if job.mask_path else "removing the background")
        rgba, method = _masked_rgba(job, spent)
        flags = run_flags(params)
        report("inference", f"seed {params.seed}")
        started = time.perf_counter()
        try:
            out = self.pipeline.run(rgba, None, params.seed, **flags)
        except Exception as exc:
            mapped = map_run_error(exc, self.device, "SAM-3D")
            if mapped is exc:
                raise
            raise mapped from exc
        spent["pipeline_run"] = round(time.perf_counter() - started, 6)
        report("exporting", f"writing {params.output_format.upper()}")
        started = time.perf_counter()
        fmt = formats.get(params.output_format)  # one of native_formats: the pool sees to it
        path = job.job_dir / fmt.filename("result")
        extra = _write_ply(out, path) if fmt.name == "ply" else _write_glb(out, path)
        spent["export"] = round(time.perf_counter() - started, 6)
        return JobOutput(path, fmt.media_type, {
            "background": method,  # the params are in metadata.json's "params" already
            "pipeline_flags": flags, "device": self.device, "model_timings": spent,
            "pose": _pose(out), **extra,
        })


def use_own_env() -> None:
    """CONDA_PREFIX, CUDA_HOME and PATH of the env this worker runs in, as activating it would.

    notebook/inference.py sets CUDA_HOME from CONDA_PREFIX at import. Inherited from the server,
    CONDA_PREFIX names whatever env was active there (or none, under a venv): the worker must
    point at its own interpreter's prefix, which holds the CUDA 12.1 toolkit and gcc 12.
    """
    prefix = sys.prefix
    os.environ["CONDA_PREFIX"] = os.environ["CUDA_HOME"] = prefix
    bin_dir = os.path.join(prefix, "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([bin_dir, *(p for p in path if p and p != bin_dir)])


def _import_inference(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("sam3d_notebook_inference", path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise ModelError(
            f"cannot import SAM-3D's notebook/inference.py ({exc}): install the checkout into "
            f"the environment {PYTHON_ENV_VAR} names (`pip install -e '.[inference]'` there)."
        ) from exc
    return module.Inference


def _require_texture_here() -> None:
    for name, why in unusable(TEXTURE_MODULES).items():
        fix = f" ({MIP_RASTERIZER_FIX})" if name == "diff_gaussian_rasterization" else ""
        raise ModelError(f"with_texture=true needs {name} in the SAM-3D environment ({why}"
                         f"{fix}); send with_texture=false")


def _masked_rgba(job: JobInput, spent: dict[str, float]) -> tuple[Any, str]:
    """HxWx4 uint8, alpha = the object mask (the client's, else the background chain's).

    The alpha is made binary (0/255) as upstream's own masks are: its crop takes every non-zero
    pixel, so a faint halo of soft alpha would widen the crop and put background in the
    pointmap.
    """
    import numpy as np

    from hub3d.imaging.background import extract_foreground

    started = time.perf_counter()
    image, mask = job.images()
    fg = extract_foreground(image, mask=mask)
    rgba = np.asarray(fg.rgba.convert("RGBA"), dtype=np.uint8).copy()
    rgba[..., 3] = np.where(rgba[..., 3] > 127, 255, 0)
    spent["background"] = round(time.perf_counter() - started, 6)
    if not rgba[..., 3].any():
        raise NoObjectDetected("no object detected in the image: the object mask is empty. "
                               "Send a mask, or a photo with one clear object.")
    return rgba, fg.method


def _write_ply(out: dict[str, Any], path: Path) -> dict[str, Any]:
    gs = out.get("gs")
    if gs is None:
        raise ModelError("SAM-3D returned no Gaussians to write as PLY; try output_format=glb")
    tmp = temp_path_for(path)
    try:
        gs.save_ply(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    xyz = getattr(gs, "get_xyz", None)
    return {"gaussians": int(len(xyz))} if xyz is not None else {}


def _write_glb(out: dict[str, Any], path: Path) -> dict[str, Any]:
    mesh = out.get("glb")
    if mesh is None or len(getattr(mesh, "vertices", ())) == 0:
        raise NoObjectDetected("no object detected in the image: SAM-3D produced no mesh. "
                               "Send a tighter mask, or output_format=ply.")
    atomic_write_bytes(path, mesh.export(file_type="glb"))
    return {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}


def _pose(out: dict[str, Any]) -> dict[str, Any]:
    pose = {}
    for key in ("rotation", "translation", "scale"):
        value = out.get(key)
        if value is not None:
            pose[key] = value.tolist() if hasattr(value, "tolist") else value
    return pose
