"""How a run ended, as values the scheduler records, and the stage times of a run cut short."""

from __future__ import annotations

from dataclasses import dataclass

from hub3d.errors import ErrorCode
from hub3d.workers.protocol import Done

__all__ = ["Completed", "Dropped", "Failure", "JobEnd", "Requeue", "code_of", "stage_durations"]


@dataclass(frozen=True)
class Completed:
    """How a run ended, as a value the scheduler records: the worker's Done."""

    done: Done
    device: str
    spent: dict[str, float]  # the model load (when it ran) and the worker's stages


@dataclass(frozen=True)
class Failure:
    """The run failed (the model, its worker, or the server); `error` is what the user reads,
    `code` what a program acts on."""

    error: str
    code: ErrorCode
    spent: dict[str, float]


@dataclass(frozen=True)
class Requeue:
    """Not the job's fault (its worker was ended for another job, its node was lost): it may
    run once more."""

    reason: str
    spent: dict[str, float]


@dataclass(frozen=True)
class Dropped:
    """Nothing to record: the job was canceled before it could run."""


JobEnd = Completed | Failure | Requeue | Dropped


def code_of(value: str) -> ErrorCode:
    """A worker's code; one this server does not know (an older or newer worker) is a model
    error, which says only that the message explains it."""
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.MODEL_ERROR


def stage_durations(marks: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Seconds per worker stage from the stage reports seen (the model load is timed apart)."""
    out: dict[str, float] = {}
    if not marks:
        return out
    for (stage, began), (_, until) in zip(marks, [*marks[1:], ("", end)], strict=True):
        if stage != "loading_model":
            out[stage] = round(out.get(stage, 0.0) + until - began, 6)
    return out
