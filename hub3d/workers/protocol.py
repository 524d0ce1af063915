"""The worker protocol: one class per message, one JSON object per line, one decoder.

control plane → worker:  Run, Cancel, Exit
worker → control plane:  Loading, then Ready | LoadFailed; per job: Stage*, then Done | Failed

On the wire each message is its fields plus its tag ("op" for messages to the worker, "type"
for messages from it), so a line reads like {"type": "stage", "job_id": …}. Images and results
never travel over the pipe: they are files in the job folder. Every message checks its own
field types (strict pydantic dataclasses): a worker that sends `"timings": "x"` is broken, and
the decoder says so instead of letting the value travel on. A worker runs several jobs at once
when told to (Ready.jobs); every job message carries its job id.
"""

from __future__ import annotations

import dataclasses
import json
from typing import IO, Any, ClassVar

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

__all__ = [
    "Cancel",
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

_STRICT = ConfigDict(strict=True)


class ProtocolError(ValueError):
    """A line that is not a message of this protocol."""


@dataclass(frozen=True, config=_STRICT)
class Message:
    tag_key: ClassVar[str]
    tag: ClassVar[str]


# control plane → worker ------------------------------------------------------------------------
@dataclass(frozen=True, config=_STRICT)
class Run(Message):
    """Run one job whose input files are in job_dir."""

    tag_key, tag = "op", "run"
    job_id: str
    job_dir: str
    params: dict[str, Any]
    has_mask: bool = False


@dataclass(frozen=True, config=_STRICT)
class Cancel(Message):
    """Stop one job at its next stage (the others on the worker go on)."""

    tag_key, tag = "op", "cancel"
    job_id: str


@dataclass(frozen=True, config=_STRICT)
class Exit(Message):
    """Finish and exit (the worker's memory is freed with the process)."""

    tag_key, tag = "op", "exit"


# worker → control plane ------------------------------------------------------------------------
@dataclass(frozen=True, config=_STRICT)
class Loading(Message):
    tag_key, tag = "type", "loading"


@dataclass(frozen=True, config=_STRICT)
class Ready(Message):
    tag_key, tag = "type", "ready"
    load_s: float = 0.0
    device: str = ""
    warmup_s: float | None = None  # the warm-up job's time; None: none ran
    jobs: int = 1  # how many jobs it runs at once


@dataclass(frozen=True, config=_STRICT)
class LoadFailed(Message):
    tag_key, tag = "type", "load_failed"
    error: str = "model failed to load"


@dataclass(frozen=True, config=_STRICT)
class Stage(Message):
    tag_key, tag = "type", "stage"
    job_id: str
    stage: str
    message: str = ""


@dataclass(frozen=True, config=_STRICT)
class Done(Message):
    tag_key, tag = "type", "done"
    job_id: str
    result: str  # file name inside the job folder
    media_type: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, config=_STRICT)
class Failed(Message):
    tag_key, tag = "type", "failed"
    job_id: str
    error: str
    code: str = "model_error"  # a hub3d.errors.ErrorCode value
    restart: bool = False  # its worker should be replaced once its other jobs end (OOM)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # stages it did spend


ToWorker = Run | Cancel | Exit
FromWorker = Loading | Ready | LoadFailed | Stage | Done | Failed
_CLASSES: dict[tuple[str, str], type[Message]] = {
    (c.tag_key, c.tag): c
    for c in (Run, Cancel, Exit, Loading, Ready, LoadFailed, Stage, Done, Failed)
}


def _plain(value: object) -> object:
    """numpy scalars and arrays in metadata travel as numbers and lists; the rest as text."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else str(value)


def encode(message: Message) -> bytes:
    wire = {message.tag_key: message.tag, **dataclasses.asdict(message)}
    return (json.dumps(wire, separators=(",", ":"), default=_plain) + "\n").encode()


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
            except (TypeError, ValidationError) as exc:
                problems = exc.errors() if isinstance(exc, ValidationError) else None
                what = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in problems) if problems else str(exc)
                raise ProtocolError(f"bad {cls.__name__} message: {what}") from None
    raise ProtocolError(f"unknown message {str(wire)[:200]}")


def write_message(stream: IO[bytes], message: Message) -> None:
    stream.write(encode(message))
    stream.flush()
