"""hub3d's SF3D backend, unchanged, with one test-only change at the weights boundary.

Served as `--models sf3d=tests.upstream.sphere_sf3d:SphereSF3D` (the repo root on PYTHONPATH).
Random weights put SF3D's density below the iso threshold everywhere, so the real pipeline makes
an empty mesh. After hub3d has loaded the real model, a forward hook on the decoder replaces the
density it returns for the tet-grid query (the only call that asks for it) with a sphere:
10 + 40·(0.5 − ‖p‖), p in the model frame. Everything else (marching tets, remesh, UV unwrap,
texture bake, PBR material, GLB) is upstream's code with its random weights, as published.
"""

from __future__ import annotations

import threading
from typing import Any

from hub3d.models.base import JobInput, JobOutput, StageReporter
from hub3d.models.sf3d import SF3DBackend

RADIUS = 0.5


class SphereSF3D(SF3DBackend):
    def load(self, device: str) -> None:
        self._job = threading.local()
        super().load(device)
        model = self.model
        # Whether hub3d's load built the marching-tets edge table (else the first job pays it).
        self.edges_built_in_load = model.isosurface_helper._all_edges is not None
        install_sphere(model)
        run_image = model.run_image

        def keep_input(image: Any, *args: Any, **kwargs: Any) -> Any:
            # what upstream was given, for the tests to read: test_run_image_input.png (per
            # thread: a worker may run several jobs at once; none during the warm-up)
            job_dir = getattr(self._job, "dir", None)
            if job_dir is not None:
                image.save(job_dir / "test_run_image_input.png")
            return run_image(image, *args, **kwargs)

        model.run_image = keep_input

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        self._job.dir = job.job_dir
        out = super().run(job, report)
        out.metadata["test_edges_built_in_load"] = self.edges_built_in_load
        if self.device.startswith("cuda"):  # torch's view of this worker's card memory
            out.metadata["test_torch_cuda"] = _torch_cuda_figures(self.device)
        return out


def _torch_cuda_figures(device: str) -> dict[str, float]:
    import os

    import torch

    gib = 1024**3
    return {"pid": os.getpid(),
            "allocated_gib": round(torch.cuda.memory_allocated(device) / gib, 3),
            "peak_allocated_gib": round(torch.cuda.max_memory_allocated(device) / gib, 3),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved(device) / gib, 3)}


def install_sphere(model: Any) -> None:
    """The decoder's density for the tet-grid query becomes the sphere's (a forward hook)."""
    from sf3d.models.utils import scale_tensor

    helper = model.isosurface_helper

    def sphere_density(module: Any, args: Any, out: dict[str, Any]) -> dict[str, Any]:
        if "density" not in out:
            return out
        density = out["density"]
        points = scale_tensor(helper.grid_vertices.to(density.device),
                              helper.points_range, model.bbox)
        assert points.shape[0] == density.numel(), "density asked for other points"
        out["density"] = (10 + 40 * (RADIUS - points.norm(dim=-1))).view_as(density)
        return out

    model.decoder.register_forward_hook(sphere_density)
