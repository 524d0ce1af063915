"""Before the first job: which requested models cannot run here, and what to use instead.
Models load lazily, so without this an untouched notebook on a CPU server says "running" and
then fails in its sample cell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["SampleFailed", "model_warnings"]


class SampleFailed(RuntimeError):
    """The sample job did not make a file; shown as one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows exactly this
        return [f"SampleFailed: {self}"]


def model_warnings(settings: Any, gpus: list[Any] | None = None) -> list[str]:
    """One line per requested model that cannot run on this machine."""
    from hub3d.gpu import query_gpus
    from hub3d.models.registry import load_backend_class

    found = query_gpus() if gpus is None else gpus
    out = []
    for spec in settings.models:
        name = spec.split("=", 1)[0]
        try:
            cls = load_backend_class(spec)
        except Exception as exc:  # unknown name, broken entry point
            out.append(f"model {name} is not available ({exc}): try MODELS='inflate'")
            continue
        python = os.environ.get(cls.python_env_var or "", "") or sys.executable
        if cls.device_kind == "cuda" and not found:
            out.append(f"model {name} needs a CUDA GPU and none is visible here: on this server"
                       " use MODELS='inflate' (CPU, no weights), or start a GPU server on the hub")
        elif not Path(python).is_file():
            out.append(f"model {name} runs with {python} ({cls.python_env_var}), which does not"
                       " exist: run its kernel_setup/ recipe first")
    return out
