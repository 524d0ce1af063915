"""The worker protocol: one class per message, one JSON object per line, one decoder.

control plane → worker:  Run, Exit
worker → control plane:  Loading, then Ready | LoadFailed; per job: Stage*, then Done | Failed

On the wire each message is its fields plus its tag ("op" for messages to the worker, "type"
for messages from it), so a line reads like {"type": "stage", "job_id": …}. Images and results
never travel over the pipe: they are files in the job folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

__all__ = [
    "Done",
    "Exit",
    "Failed",
    "FromWorker",
    "LoadFailed",
    "Loading",
    "Message",
    "ProtocolError",
    "Ready",
    "Run",
    "Stage",
    "ToWorker",
    "decode",
    "encode",
    "write_message",
]


class ProtocolError(ValueError):
    """A line that is not a message of this protocol."""


@dataclass(frozen=True)
class Message:
    tag_key: ClassVar[str]
    tag: ClassVar[str]


# control plane → worker ------------------------------------------------------------------------
@dataclass(frozen=True)
class Run(Message):
    """Run one job whose input files are in job_dir."""

    tag_key, tag = "op", "run"
    job_id: str
    job_dir: str
    params: dict[str, Any]
    has_mask: bool = False


@dataclass(frozen=True)
class Exit(Message):
    """Finish and exit (the worker's memory is freed with the process)."""

    tag_key, tag = "op", "exit"


# worker → control plane ------------------------------------------------------------------------
@dataclass(frozen=True)
class Loading(Message):
    tag_key, tag = "type", "loading"


@dataclass(frozen=True)
class Ready(Message):
    tag_key, tag = "type", "ready"
    load_s: float = 0.0
    device: str = ""


@dataclass(frozen=True)
class LoadFailed(Message):
    tag_key, tag = "type", "load_failed"
    error: str = "model failed to load"


@dataclass(frozen=True)
class Stage(Message):
    tag_key, tag = "type", "stage"
    job_id: str
    stage: str
    message: str = ""


@dataclass(frozen=True)
class Done(Message):
    tag_key, tag = "type", "done"
    job_id: str
    result: str  # file name inside the job folder
    media_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Message):
    tag_key, tag = "type", "failed"
    job_id: str
    error: str
    code: str = "model_error"
    restart: bool = False  # the worker exits after this message (e.g. out of memory)
    timings: dict[str, float] = field(default_factory=dict)  # the stages it did spend


ToWorker = Run | Exit
FromWorker = Loading | Ready | LoadFailed | Stage | Done | Failed
_CLASSES: dict[tuple[str, str], type[Message]] = {
    (c.tag_key, c.tag): c for c in (Run, Exit, Loading, Ready, LoadFailed, Stage, Done, Failed)
}


def encode(message: Message) -> bytes:
    wire = {message.tag_key: message.tag, **dataclasses.asdict(message)}
    return (json.dumps(wire, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> Message:
    """The message a line holds; ProtocolError for anything else."""
    try:
        wire = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    if not isinstance(wire, dict):
        raise ProtocolError("a message must be a JSON object")
    for key in ("op", "type"):
        cls = _CLASSES.get((key, wire.get(key)))  # type: ignore[arg-type]
        if cls is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            try:
                return cls(**{k: v for k, v in wire.items() if k in names})
            except TypeError as exc:
                raise ProtocolError(f"bad {cls.__name__} message: {exc}") from None
    raise ProtocolError(f"unknown message {str(wire)[:200]}")


def write_message(stream: IO[bytes], message: Message) -> None:
    stream.write(encode(message))
    stream.flush()
