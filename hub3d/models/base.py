"""The backend protocol every model implements, and the parameters all backends share.

A backend module must be cheap to import (the control plane imports it to validate
parameters); heavy imports (torch, upstream code) belong in `load()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub3d.models.files import WeightsSpec

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
    """What every backend honours; each backend declares the rest in its own subclass.

    A backend's subclass is its one declaration of its parameters: requests are validated
    against it, `/models` and the OpenAPI body show its JSON schema, and metadata.json records
    its values. `extra="forbid"`: a parameter the backend does not take is refused (422), never
    silently ignored.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(42, ge=0, le=2**32 - 1,
                      description="the same seed, image and parameters give the same result")
    output_format: str = Field(
        "glb", description="the result's format: any the model offers (GET /models lists them;"
                           " glb, usdz, obj for meshes, ply for 3D Gaussian splats)")

    @field_validator("output_format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> object:
        from hub3d import formats

        if isinstance(value, str):
            return formats.get(value).name  # UnknownFormat names the formats hub3d writes
        return value


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
    # Its files: the checkpoint setting, what fetch-weights downloads, the caches it reads.
    weights: ClassVar[WeightsSpec | None] = None
    # The formats `run` writes itself (output_format); others are converted from these.
    native_formats: ClassVar[tuple[str, ...]] = ("glb",)
    # A module with doctor's rows for this model (`gather(python, catalog_entry)`, `rows`).
    doctor_section: ClassVar[str | None] = None
    # Jobs one worker runs at once on its one loaded model, by device kind, when the server
    # is not told (--jobs-per-worker). 1: `run` must not be called from two threads at once.
    jobs_per_worker: ClassVar[dict[str, int]] = {}
    # Device kinds where `warmup` pays for itself (HUB3D_WARMUP=auto).
    warmup_on: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_request(cls, params: GenerateParams, *, python: str) -> None:
        """Control-plane check of params before a job is queued; raise InvalidParams.
        `python` is the interpreter this model's workers run (its own env may differ)."""

    def load(self, device: str) -> None:
        """Load weights onto `device` ("cpu", "cuda:0" …); called once per worker process."""

    def warmup(self) -> None:
        """Run one small job after `load`, so the first real job finds everything warm."""

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        """One job. With jobs_per_worker > 1 it runs in several threads at once: keep
        per-job state in locals, not on self."""
        raise NotImplementedError
