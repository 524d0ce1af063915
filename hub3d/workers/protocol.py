"""Messages between the control plane and a model worker: one JSON object per line.

control plane → worker:  {"op": "run", "job_id", "job_dir", "params", "has_mask"} | {"op": "exit"}
worker → control plane:  {"type": "loading"} → {"type": "ready", "load_s", "device"}
                         | {"type": "load_failed", "error"}
                         per job: {"type": "stage", "job_id", "stage", "message"}* then
                         {"type": "done", "job_id", "result", "media_type", "metadata", "timings"}
                         | {"type": "failed", "job_id", "error", "code", "restart", "timings"}
Images and results never travel over the pipe: they are files in the job folder.
"""

from __future__ import annotations

import json
from typing import IO, Any

__all__ = ["decode", "encode", "write_message"]


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("worker message must be a JSON object")
    return message


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    stream.write(encode(message))
    stream.flush()
