"""Real backends for the serving-core tests: they sleep, crash or fail on request.

Served with `--models slow=tests.backends.testing:SlowBackend` (the repo root on PYTHONPATH).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import ClassVar, Literal

import trimesh
from pydantic import Field

from hub3d.errors import ModelError, OutOfMemory
from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter


class SlowParams(GenerateParams):
    sleep_s: float = Field(0.0, ge=0, le=3600, description="seconds to sleep in inference")
    fail: Literal["none", "error", "bug", "segfault", "exit", "oom", "kill", "after"] = Field(
        "none", description="how to fail: a model error, a bug, a crash, an OOM, a broken extra")


class SlowBackend(Backend):
    name = "slow"
    description = "test backend: sleeps, then writes a small box GLB; can fail on request"
    params_model: ClassVar[type[GenerateParams]] = SlowParams

    def load(self, device: str) -> None:
        self.device = device
        self.pid = os.getpid()

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        params = job.params
        assert isinstance(params, SlowParams)
        report("preprocessing")
        if not job.image_path.is_file():
            raise ModelError("input.png missing")
        report("inference", f"sleeping {params.sleep_s} s on {self.device}")
        time.sleep(params.sleep_s)
        if params.fail == "error":
            raise ModelError("the test backend was asked to fail")
        if params.fail == "bug":
            raise ZeroDivisionError("a bug in the backend")
        if params.fail == "oom":
            raise OutOfMemory("CUDA out of memory (test): 1.0 GB free of 48.0 GB")
        if params.fail == "segfault":
            ctypes.string_at(0)
        if params.fail == "exit":
            os._exit(3)
        if params.fail == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        report("exporting")
        path = job.job_dir / "result.glb"
        atomic_write_bytes(path, trimesh.creation.box().export(file_type="glb"))

        def broken_extra() -> None:
            raise OSError("the extra file could not be written (test)")

        return JobOutput(path, "model/gltf-binary", {"worker_pid": self.pid, "device": self.device},
                         after=broken_extra if params.fail == "after" else None)


class SlowLoadBackend(SlowBackend):
    name = "slowload"
    description = "test backend whose load takes a few seconds, like a real model's"

    def load(self, device: str) -> None:
        time.sleep(3.0)
        super().load(device)


class BrokenLoadBackend(SlowBackend):
    name = "broken"
    description = "test backend whose load always fails"

    def load(self, device: str) -> None:
        raise RuntimeError("weights not found at /nonexistent/model.safetensors")


class BigGPUBackend(SlowBackend):
    """A CUDA-kind backend needing 30 GB: drives the VRAM-aware unloading."""

    name = "big"
    device_kind = "cuda"
    vram_gb = 30.0


class SmallGPUBackend(SlowBackend):
    name = "small"
    device_kind = "cuda"
    vram_gb = 8.0
