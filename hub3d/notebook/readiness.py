"""Before the first job: which requested models cannot run here, and what to use instead.
Models load lazily, so without this an untouched notebook on a CPU server says "running" and
then fails in its sample cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub3d.models.catalog import Catalog

__all__ = ["SampleFailed", "model_lines", "model_warnings"]


class SampleFailed(RuntimeError):
    """The sample job did not make a file; shown as one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows exactly this
        return [f"SampleFailed: {self}"]


def model_warnings(catalog: Catalog, gpus: list[Any] | None = None) -> list[str]:
    """One line per served model that cannot run on this machine."""
    from hub3d.gpu import query_gpus

    found = query_gpus() if gpus is None else gpus
    out = []
    for model in catalog:
        if model.cls is None:  # unknown name, broken entry point
            out.append(f"model {model.name} is not available ({model.error}): try "
                       "MODELS='inflate'")
        elif model.cls.device_kind == "cuda" and not found:
            out.append(f"model {model.name} needs a CUDA GPU and none is visible here: on this"
                       " server use MODELS='inflate' (CPU, no weights), or start a GPU server on"
                       " the hub")
        elif not Path(model.python).is_file():
            out.append(f"model {model.name} runs with {model.python} ({model.python_from}), "
                       "which does not exist: run its kernel_setup/ recipe first")
    return out


def model_lines(catalog: Catalog) -> list[str]:
    """Per served model: the Python its workers run and where its checkpoint comes from."""
    out = []
    for model in catalog:
        if model.cls is None:
            continue
        files = model.files_line()
        out.append(f"{model.name}: runs with {model.python} ({model.python_from})"
                   + (f"; checkpoint {files}" if files else ""))
    return out
