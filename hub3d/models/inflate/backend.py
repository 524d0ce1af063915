"""`inflate`: the built-in, weight-free backend (CPU, deterministic).

Classical silhouette inflation (hub3d.models.inflate.method), not a learned model. This module stays
cheap to import, as the control plane imports it: the method's numpy/Pillow/OpenCV code loads
in the worker, in `load()`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter

__all__ = ["InflateBackend", "InflateParams"]


class InflateParams(GenerateParams):
    """inflate's knobs. The seed changes nothing: the method is deterministic."""

    with_texture: bool = Field(True, description="false: vertex colours instead of a texture")
    texture_resolution: int = Field(1024, ge=64, le=4096,
                                    description="texture side in pixels (a power of two at most)")
    # Its mesh is a regular grid already: only "none" is taken, so a client asking for a remesh
    # hears that it is not done rather than getting a mesh it did not ask for.
    remesh_option: Literal["none"] = Field(
        "none", description="only none: the mesh is a regular grid (use vertex_count)")
    vertex_count: int = Field(-1, ge=-1, le=200_000,
                              description="target vertex count; -1: the method's own")
    foreground_ratio: float = Field(0.85, ge=0.1, le=1.0,
                                    description="the object's size in the frame")


class InflateBackend(Backend):
    name = "inflate"
    description = ("Weight-free classical silhouette inflation (CPU): a rounded, closed mesh of"
                   " the object's outline, textured with the photo. Not a learned model.")
    params_model: ClassVar[type[GenerateParams]] = InflateParams
    writes_preview = True
    native_formats = ("glb", "ply")

    def load(self, device: str) -> None:
        from hub3d.models.inflate import method  # no weights: loading is importing the method

        self.device, self._method = device, method

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        assert isinstance(job.params, InflateParams)
        image, mask = job.images()  # input.png is RGB or RGBA: the control plane made sure
        result = self._method.inflate_image(image, job.params, mask, report)
        path = job.job_dir / f"result{result.suffix}"
        atomic_write_bytes(path, result.data)

        def write_preview() -> None:
            atomic_write_bytes(job.job_dir / "preview.png", self._method.preview_png(result))

        return JobOutput(path, result.media_type, result.metadata, after=write_preview)
