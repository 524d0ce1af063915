"""How a run ended, as values the scheduler records, and the stage times of a run cut short."""

from __future__ import annotations

from dataclasses import dataclass

from hub3d.workers.protocol import Done

__all__ = ["Completed", "Dropped", "Failure", "JobEnd", "stage_durations"]


@dataclass(frozen=True)
class Completed:
    """How a run ended, as a value the scheduler records: the worker's Done."""

    done: Done
    device: str
    spent: dict[str, float]  # the model load (when it ran) and the worker's stages


@dataclass(frozen=True)
class Failure:
    """The run failed (the model, its worker, or the server); `error` is what the user reads."""

    error: str
    spent: dict[str, float]


@dataclass(frozen=True)
class Dropped:
    """Nothing to record: the job was canceled before it could run."""


JobEnd = Completed | Failure | Dropped


def stage_durations(marks: list[tuple[str, float]], end: float) -> dict[str, float]:
    """Seconds per worker stage from the stage reports seen (the model load is timed apart)."""
    out: dict[str, float] = {}
    for (stage, began), (_, until) in zip(marks, [*marks[1:], ("", end)], strict=True):
        if stage != "loading_model":
            out[stage] = round(out.get(stage, 0.0) + until - began, 6)
    return out
