"""A backend that breaks its contract on request, one way per job (`fault`), for the tests
that prove every job ends: served as `faulty=tests.backends.faulty:FaultyBackend`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import trimesh
from pydantic import Field

from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter

FAULTS = ("raise", "not_a_job_output", "path_as_str", "media_type_none", "metadata_list",
          "metadata_int_keys", "after_not_callable", "no_file", "outside_the_job",
          "exit_mid_job", "garbage_on_the_pipe", "wrong_field_types", "unknown_message",
          "hang", "unrecordable")
Fault = Literal["none", "raise", "not_a_job_output", "path_as_str", "media_type_none",
                "metadata_list", "metadata_int_keys", "after_not_callable", "no_file",
                "outside_the_job", "exit_mid_job", "garbage_on_the_pipe", "wrong_field_types",
                "unknown_message", "hang", "unrecordable"]


class FaultyParams(GenerateParams):
    fault: Fault = Field("none", description="which part of the contract to break")
    sleep_s: float = Field(0.0, ge=0, le=60, description="seconds to take first")


def _pipe(line: bytes) -> None:
    """Bytes straight onto the worker's protocol pipe (a broken or foreign worker)."""
    from hub3d.workers import child

    assert child.protocol_stream is not None
    child.protocol_stream.write(line)
    child.protocol_stream.flush()


class FaultyBackend(Backend):
    name = "faulty"
    description = "test backend: breaks one part of its contract per job, on request"
    params_model: ClassVar[type[GenerateParams]] = FaultyParams
    jobs_per_worker: ClassVar[dict[str, int]] = {"cpu": 2}

    def load(self, device: str) -> None:
        self.pid = os.getpid()

    def run(self, job: JobInput, report: StageReporter) -> Any:
        params = job.params
        assert isinstance(params, FaultyParams)
        report("inference", f"fault {params.fault}")
        time.sleep(params.sleep_s)
        fault = params.fault
        path = job.job_dir / "result.glb"
        if fault != "no_file":
            atomic_write_bytes(path, trimesh.creation.box().export(file_type="glb"))
        if fault == "raise":
            raise RuntimeError("the backend tripped over its own feet")
        if fault == "exit_mid_job":
            os._exit(3)
        if fault == "hang":
            time.sleep(3600)
        if fault == "garbage_on_the_pipe":
            _pipe(b"\x00\x01 this is not a message\n")
        if fault == "wrong_field_types":
            _pipe(b'{"type":"done","job_id":1,"result":null,"media_type":"m","timings":"x"}\n')
        if fault == "unknown_message":
            _pipe(b'{"type":"teleport","job_id":"' + job.job_id.encode() + b'"}\n')
        if fault in ("garbage_on_the_pipe", "wrong_field_types", "unknown_message"):
            time.sleep(30)  # the control plane ends this worker long before
        if fault == "unrecordable":  # where hub3d writes metadata.json, a folder stands
            (job.job_dir / "metadata.json").mkdir()
        if fault == "outside_the_job":
            outside = job.job_dir.parent / f"{job.job_id}-elsewhere.glb"
            outside.write_bytes(path.read_bytes())
            return JobOutput(outside, "model/gltf-binary")
        outputs: dict[str, Any] = {
            "not_a_job_output": {"result_path": path},
            "path_as_str": JobOutput(str(path), "model/gltf-binary"),  # type: ignore[arg-type]
            "media_type_none": JobOutput(path, None),  # type: ignore[arg-type]
            "metadata_list": JobOutput(path, "model/gltf-binary",
                                       ["not", "a", "dict"]),  # type: ignore[arg-type]
            "metadata_int_keys": JobOutput(path, "model/gltf-binary",
                                           {1: "one"}),  # type: ignore[dict-item]
            "after_not_callable": JobOutput(path, "model/gltf-binary",
                                            after="later"),  # type: ignore[arg-type]
        }
        return outputs.get(fault, JobOutput(Path(path), "model/gltf-binary",
                                            {"worker_pid": self.pid}))
