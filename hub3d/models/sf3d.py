"""SF3D (Stability-AI/stable-fast-3d) as a hub3d backend.

Upstream is not a pip package: its source tree comes from HUB3D_SF3D_SRC (put on sys.path) or is
importable already. The checkpoint (a local folder holding config.yaml and model.safetensors,
or a Hugging Face id) is found by hub3d.models.files' rule from `WEIGHTS`: HUB3D_SF3D_CHECKPOINT
when set, else what `hub3d fetch-weights sf3d` left in the data dir, else the gated
stabilityai/stable-fast-3d; the pool hands the worker the answer in HUB3D_SF3D_CHECKPOINT.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from hub3d import formats
from hub3d.errors import ModelError, NoObjectDetected
from hub3d.fsutil import atomic_write_bytes
from hub3d.models import sf3d_dither
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter
from hub3d.models.files import Fetched, HubFiles, StepDone, WeightsSpec
from hub3d.models.upstream import (
    add_source_tree,
    hub_error_message,
    inference_context,
    map_run_error,
)

__all__ = ["DEFAULT_CHECKPOINT", "SF3DBackend", "SF3DParams", "WEIGHTS", "check_checkpoint"]

DEFAULT_CHECKPOINT = "stabilityai/stable-fast-3d"
CONFIG_NAME, WEIGHT_NAME = "config.yaml", "model.safetensors"
CHECKPOINT_SETTING = "HUB3D_SF3D_CHECKPOINT"
_RECIPE = "kernel_setup/setup_sf3d_kernel.sh"


class SF3DParams(GenerateParams):
    """SF3D's own knobs, with the ranges of its demo app. It always textures; it writes GLB (USDZ
    and OBJ are made from it)."""

    texture_resolution: int = Field(1024, ge=512, le=2048,
                                    description="side of the baked texture in pixels")
    remesh_option: Literal["none", "triangle", "quad"] = Field(
        "none", description="remesh the output: none, triangle or quad (any case)")
    vertex_count: int = Field(-1, ge=-1, le=20_000,
                              description="target vertex count of the remesh; -1: no target")
    foreground_ratio: float = Field(0.85, ge=0.5, le=1.0,
                                    description="the object's size in the frame")

    @field_validator("remesh_option", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        # Upstream silently treats "Triangle" as "none"; accept any case, pass lowercase.
        return value.strip().lower() if isinstance(value, str) else value


def _looks_like_hub_id(value: str) -> bool:
    return value.count("/") == 1 and not value.startswith((".", "/", "~"))


def check_checkpoint(value: str) -> str:
    """Validate a local checkpoint folder (clear errors); a hub id passes through unchanged."""
    path = Path(value).expanduser()
    if not path.exists():
        if _looks_like_hub_id(value):
            return value
        raise ModelError(
            f"SF3D checkpoint folder {value} does not exist. Set HUB3D_SF3D_CHECKPOINT to the "
            f"folder holding {CONFIG_NAME} and {WEIGHT_NAME} (see `hub3d fetch-weights sf3d`)."
        )
    if not path.is_dir():
        raise ModelError(
            f"SF3D checkpoint {value} is a file; point HUB3D_SF3D_CHECKPOINT at the folder that "
            f"holds {CONFIG_NAME} and {WEIGHT_NAME}."
        )
    missing = [n for n in (CONFIG_NAME, WEIGHT_NAME) if not (path / n).is_file()]
    if missing:
        nested = sorted({p.parent for n in missing for p in path.glob(f"*/{n}")})
        hint = (f" They are in {nested[0]}: point HUB3D_SF3D_CHECKPOINT there." if nested else
                " Download them with `hub3d fetch-weights sf3d`.")
        raise ModelError(f"SF3D checkpoint folder {value} lacks {', '.join(missing)}.{hint}")
    weights = path / WEIGHT_NAME
    with open(weights, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise ModelError(
            f"{weights} is a Git LFS pointer, not the weights: fetch the real file "
            "(`git lfs pull` or `hub3d fetch-weights sf3d`)."
        )
    if weights.stat().st_size < 8:
        raise ModelError(f"{weights} is empty or truncated; download it again.")
    _check_config(path / CONFIG_NAME)
    return str(path.resolve())


def _check_config(config: Path) -> None:
    try:
        import yaml
    except ImportError:  # upstream brings omegaconf (and PyYAML); without it, let it fail there
        return
    try:
        loaded = yaml.safe_load(config.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{config} is not valid YAML ({exc}); download it again.") from None
    if not isinstance(loaded, dict):
        raise ModelError(f"{config} is not an SF3D config (a YAML mapping); download it again.")


def _check_fetched(fetched: Fetched) -> StepDone:
    return StepDone(f"checkpoint {check_checkpoint(str(fetched.checkpoint))} is complete")


def _u2net(fetched: Fetched) -> StepDone:
    from hub3d.weights import u2net_step

    return u2net_step(fetched)


WEIGHTS = WeightsSpec(
    setting=CHECKPOINT_SETTING, checkpoint="sf3d", default=DEFAULT_CHECKPOINT,
    plan=(
        HubFiles(DEFAULT_CHECKPOINT, (CONFIG_NAME, WEIGHT_NAME), into="sf3d"),
        # built at load by the published config (then overwritten by SF3D's own weights)
        HubFiles("facebook/dinov2-large",
                 ("config.json", "model.safetensors", "preprocessor_config.json")),
        HubFiles("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", ("open_clip_pytorch_model.bin",)),
    ),
    caches=("HF_HOME", "U2NET_HOME"), steps=(_check_fetched, _u2net),
    gated=(DEFAULT_CHECKPOINT,),
)


class SF3DBackend(Backend):
    name = "sf3d"
    description = "Stable Fast 3D (Stability AI): one image to a textured, UV-unwrapped GLB in ~1 s"
    params_model: ClassVar[type[GenerateParams]] = SF3DParams
    device_kind = "cuda"
    vram_gb = 8.0
    writes_preview = True
    weights = WEIGHTS
    doctor_section = "hub3d.doctor.sf3d"
    # On a GPU most of a job is CPU work (UV unwrap, bake post-processing, JPEG, GLB): several
    # jobs on one model copy keep the card busy. On a CPU the jobs compete for the same cores.
    jobs_per_worker: ClassVar[dict[str, int]] = {"cuda": 4, "cpu": 1}
    # The first job of a process pays for CUDA kernels and lazy buffers (~2.7 × a warm one).
    warmup_on: ClassVar[tuple[str, ...]] = ("cuda",)

    def load(self, device: str) -> None:
        add_source_tree("HUB3D_SF3D_SRC", "sf3d/system.py", "Stability-AI/stable-fast-3d")
        try:
            from sf3d import utils as sf3d_utils
            from sf3d.system import SF3D
        except ImportError as exc:
            raise ModelError(
                f"cannot import the SF3D code ({exc}) in {sys.executable}. Serve SF3D from the "
                f"env {_RECIPE} builds (add --cpu without a GPU), or point HUB3D_PYTHON_SF3D at "
                "its python, and HUB3D_SF3D_SRC at the stable-fast-3d checkout whose extensions "
                "(texture_baker, uv_unwrapper) it built; `hub3d doctor` checks both."
            ) from exc
        checkpoint = check_checkpoint(
            os.environ.get(CHECKPOINT_SETTING, "").strip() or DEFAULT_CHECKPOINT
        )
        try:
            model = SF3D.from_pretrained(checkpoint, CONFIG_NAME, WEIGHT_NAME)
        except ImportError as exc:
            raise ModelError(_build_import_hint(exc, checkpoint)) from exc
        except Exception as exc:
            message = hub_error_message(exc, checkpoint, "sf3d")
            if message:
                raise ModelError(message) from exc
            raise
        model.to(device)
        model.eval()
        sf3d_dither.install(sys.modules["sf3d.system"])  # the seed decides the textures
        # Upstream builds the marching-tets edge table on the first mesh (~20 s on a CPU at the
        # real grid size): pay it here, once per worker, not in the first job.
        helper = getattr(model, "isosurface_helper", None)
        if helper is not None:
            _ = helper.all_edges
        self.model, self.utils = model, sf3d_utils
        self.device, self.checkpoint = device, checkpoint

    def warmup(self) -> None:
        """One reconstruction of a drawn object at the default texture size, and its GLB."""
        from PIL import Image, ImageDraw

        image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
        ImageDraw.Draw(image).ellipse((96, 64, 416, 448), fill=(200, 120, 60, 255))
        defaults = SF3DParams.model_validate({})
        mesh = self._reconstruct(self.utils.resize_foreground(image, 0.85), defaults, {})
        if len(mesh.vertices):
            _glb_bytes(mesh)

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        params = job.params
        assert isinstance(params, SF3DParams)
        spent: dict[str, float] = {}
        try:
            report("preprocessing", "removing the background")
            rgba, method = self._foreground(job, spent, params.foreground_ratio)
            report("inference", f"texture {params.texture_resolution}, remesh "
                                f"{params.remesh_option}")
            with sf3d_dither.seeded(params.seed):
                mesh = self._reconstruct(rgba, params, spent)
        except Exception as exc:
            mapped = map_run_error(exc, self.device, "SF3D")
            if mapped is exc:
                raise
            raise mapped from exc
        if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
            raise NoObjectDetected(
                "no object detected in the image: SF3D produced an empty mesh. Send a photo "
                "with one clear object on a plain background, or pass a mask."
            )
        report("exporting", "writing GLB")
        path = job.job_dir / "result.glb"
        started = time.perf_counter()
        atomic_write_bytes(path, _glb_bytes(mesh))
        spent["export_glb"] = round(time.perf_counter() - started, 6)
        # the params are in metadata.json's "params" already
        return JobOutput(path, formats.get("glb").media_type, {
            "vertices": int(len(mesh.vertices)),
            "faces": int(len(mesh.faces)),
            "background": method,
            "device": self.device,
            "checkpoint": self.checkpoint,
            "model_timings": spent,
        }, after=lambda: atomic_write_bytes(job.job_dir / "preview.png", _preview_png(mesh)))

    def _foreground(self, job: JobInput, spent: dict[str, float], ratio: float) -> tuple[Any, str]:
        from hub3d.imaging.background import extract_foreground

        started = time.perf_counter()
        image, mask = job.images()
        fg = extract_foreground(image, mask=mask)
        spent["background"] = round(time.perf_counter() - started, 6)
        started = time.perf_counter()
        rgba = self.utils.resize_foreground(fg.rgba.convert("RGBA"), ratio)
        spent["resize_foreground"] = round(time.perf_counter() - started, 6)
        return rgba, fg.method

    def _reconstruct(self, rgba: Any, params: SF3DParams, spent: dict[str, float]) -> Any:
        started = time.perf_counter()
        with inference_context(self.device, bf16=True):
            mesh, _ = self.model.run_image(
                rgba,
                bake_resolution=params.texture_resolution,
                remesh=params.remesh_option.lower(),  # upstream treats any other case as "none"
                vertex_count=params.vertex_count,
                estimate_illumination=False,
            )
        spent["run_image"] = round(time.perf_counter() - started, 6)
        return mesh


def _build_import_hint(exc: ImportError, checkpoint: str) -> str:
    """Upstream imports the classes its config names only when it builds the model, so a
    broken env passes `import sf3d.system` and fails here: say which of the two it is."""
    config = Path(checkpoint) / CONFIG_NAME if Path(checkpoint).is_dir() else (
        f"{checkpoint}'s {CONFIG_NAME}")
    return (
        f"building the SF3D model failed: {type(exc).__name__}: {exc}. SF3D imports the classes "
        f"{config} names only now. If a package is missing or too old (this SF3D code needs "
        f"torch >= 2.4), rebuild the env with {_RECIPE} and run `hub3d doctor`; if a class "
        "path is wrong, use the config.yaml of stabilityai/stable-fast-3d (paths 'sf3d.…')."
    )


def _glb_bytes(mesh: Any) -> bytes:
    """Upstream's own export, with tangents for its normal map written into the file, so every
    viewer shades it alike (and the Khronos validator has nothing to warn about)."""
    import trimesh
    from trimesh.exchange.gltf import export_glb

    from hub3d.formats.glb import with_tangents

    data: bytes = export_glb(trimesh.Scene(mesh), include_normals=True)  # type: ignore[no-untyped-call]
    return with_tangents(data)


def _preview_png(mesh: Any, side: int = 256) -> bytes:
    """A front thumbnail, coloured from the baseColor texture at each vertex's UV."""
    import io

    import numpy as np
    from trimesh.visual.color import uv_to_color

    from hub3d.imaging.preview import render_front

    visual = mesh.visual
    texture = getattr(getattr(visual, "material", None), "baseColorTexture", None)
    colors = uv_to_color(visual.uv, texture) if texture is not None else visual.vertex_colors
    # SF3D's GLB has the input camera on -z; turn 180° about y so the photo's side faces +z.
    turned = np.asarray(mesh.vertices) * np.array([-1.0, 1.0, -1.0])
    buf = io.BytesIO()
    render_front(turned, np.asarray(mesh.faces), colors, side).save(buf, format="PNG")
    return buf.getvalue()
