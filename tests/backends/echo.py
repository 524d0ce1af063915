"""A transport test backend: reads its input, reports the three stages, writes a result of a
chosen size and does nothing else, so a run's time is the worker's own overhead.

Served with `--models echo=tests.backends.echo:EchoBackend` (the repo root on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import os
from typing import ClassVar

from pydantic import Field

from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter


class EchoParams(GenerateParams):
    result_bytes: int = Field(300_000, ge=1, le=100_000_000, description="result size in bytes")


class EchoBackend(Backend):
    name = "echo"
    description = "test backend: a result of result_bytes bytes, no work (transport overhead)"
    params_model: ClassVar[type[GenerateParams]] = EchoParams

    def load(self, device: str) -> None:
        self.device, self.pid = device, os.getpid()

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        params = job.params
        assert isinstance(params, EchoParams)
        report("preprocessing")
        digest = hashlib.sha256(job.image_path.read_bytes()).hexdigest()
        report("inference")
        report("exporting")
        path = job.job_dir / "result.bin"
        atomic_write_bytes(path, bytes(params.result_bytes))
        return JobOutput(path, "application/octet-stream",
                         {"worker_pid": self.pid, "input_sha256": digest})
