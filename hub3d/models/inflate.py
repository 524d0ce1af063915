"""`inflate`: the built-in, weight-free backend (CPU, deterministic).

Classical silhouette inflation (hub3d.models.inflation), not a learned model. This module stays
cheap to import, as the control plane imports it: the method's numpy/Pillow/OpenCV code loads
in the worker, in `load()`.
"""

from __future__ import annotations

from typing import ClassVar

from hub3d.jobs.files import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter

__all__ = ["InflateBackend"]


class InflateBackend(Backend):
    name = "inflate"
    description = ("Weight-free classical silhouette inflation (CPU): a rounded, closed mesh of"
                   " the object's outline, textured with the photo. Not a learned model.")
    params_model: ClassVar[type[GenerateParams]] = GenerateParams
    writes_preview = True

    def load(self, device: str) -> None:
        from hub3d.models import inflation  # no weights: loading is importing the method

        self.device, self._method = device, inflation

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        image, mask = job.images()  # input.png is RGB or RGBA: the control plane made sure
        result = self._method.inflate_image(image, job.params, mask, report)
        path = job.job_dir / f"result{result.suffix}"
        atomic_write_bytes(path, result.data)

        def write_preview() -> None:
            atomic_write_bytes(job.job_dir / "preview.png", self._method.preview_png(result))

        return JobOutput(path, result.media_type, result.metadata, after=write_preview)
