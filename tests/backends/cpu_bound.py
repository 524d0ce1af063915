"""A CPU-bound test backend for the scaling benchmark: a fixed amount of single-threaded work per
job (no sleeping, no I/O wait), then a small box GLB.

Served with `--models cpu=tests.backends.cpu_bound:CPUBoundBackend` (the repo root on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import os
from typing import ClassVar

import trimesh
from pydantic import Field

from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter


class CPUParams(GenerateParams):
    work: int = Field(200_000, ge=1, le=50_000_000, description="SHA-256 rounds to compute")


class CPUBoundBackend(Backend):
    name = "cpu"
    description = "test backend: burns a fixed number of SHA-256 rounds on one core"
    params_model: ClassVar[type[GenerateParams]] = CPUParams

    def load(self, device: str) -> None:
        self.device, self.pid = device, os.getpid()

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        params = job.params
        assert isinstance(params, CPUParams)
        report("inference", f"{params.work} rounds on {self.device}")
        digest = job.image_path.read_bytes()[:64]
        for _ in range(params.work):  # one core, the GIL held: a stand-in for model compute
            digest = hashlib.sha256(digest).digest()
        report("exporting")
        path = job.job_dir / "result.glb"
        atomic_write_bytes(path, trimesh.creation.box().export(file_type="glb"))
        return JobOutput(path, "model/gltf-binary",
                         {"worker_pid": self.pid, "device": self.device, "digest": digest.hex()})
