"""The backend protocol every model implements, and the parameters all backends share.

A backend module must be cheap to import (the control plane imports it to validate
parameters); heavy imports (torch, upstream code) belong in `load()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Backend",
    "GenerateParams",
    "JobInput",
    "JobOutput",
    "StageReporter",
    "STAGES",
]

STAGES = ("loading_model", "preprocessing", "inference", "exporting")

# report(stage, message="") — stage is one of STAGES.
StageReporter = Callable[..., None]


class GenerateParams(BaseModel):
    """Parameters common to every backend; a backend narrows or extends them in a subclass."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(42, ge=0, le=2**32 - 1)
    output_format: Literal["glb", "ply"] = "glb"
    with_texture: bool = True
    texture_resolution: int = Field(1024, ge=64, le=4096)
    remesh_option: Literal["none", "triangle", "quad"] = "none"
    vertex_count: int = Field(-1, ge=-1, le=200_000)
    foreground_ratio: float = Field(0.85, ge=0.1, le=1.0)


@dataclass
class JobInput:
    """What a worker hands a backend: files in the job folder plus validated params."""

    job_id: str
    job_dir: Path
    image_path: Path  # input.png: decoded, EXIF-rotated, RGB or RGBA
    params: GenerateParams
    mask_path: Path | None = None  # mask.png (L), when the client sent one

    def images(self) -> tuple[Any, Any]:
        """(input image, mask or None) as PIL images, loaded into memory."""
        from PIL import Image

        with Image.open(self.image_path) as img:
            image = img.copy()
        if self.mask_path is None:
            return image, None
        with Image.open(self.mask_path) as m:
            return image, m.convert("L")


@dataclass
class JobOutput:
    """A finished result. `result_path` is already complete on disk (written atomically)."""

    result_path: Path
    media_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # Extra files no client waits for (a preview): written after the job is reported done, so
    # they add nothing to its latency.
    after: Callable[[], None] | None = None


class Backend:
    """Subclass, set the class attributes, implement `load` and `run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params_model: ClassVar[type[GenerateParams]] = GenerateParams
    device_kind: ClassVar[Literal["cpu", "cuda"]] = "cpu"
    # Free VRAM (GB) the model needs on its device; the scheduler uses it to unload idle models.
    vram_gb: ClassVar[float] = 0.0
    # Env var naming the Python executable for this model's workers (own env, own CUDA stack).
    python_env_var: ClassVar[str | None] = None
    # True when `run` leaves a preview.png (possibly from `JobOutput.after`).
    writes_preview: ClassVar[bool] = False

    @classmethod
    def check_request(cls, params: GenerateParams) -> None:
        """Control-plane check of params before a job is queued; raise InvalidParams."""

    def load(self, device: str) -> None:
        """Load weights onto `device` ("cpu", "cuda:0" …); called once per worker process."""

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        raise NotImplementedError
