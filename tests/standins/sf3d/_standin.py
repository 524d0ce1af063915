"""Test switches shared by the stand-in modules (not part of the upstream API)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def mode() -> str:
    """`ok`, `oom`, `empty` or `sleep:<seconds>`, from the file HUB3D_STANDIN_MODE names."""
    path = os.environ.get("HUB3D_STANDIN_MODE", "")
    if path and os.path.isfile(path):
        with open(path) as fh:
            return fh.read().strip() or "ok"
    return "ok"


def record(call: str, **args: Any) -> None:
    """Append the arguments of one model call to the file HUB3D_STANDIN_CALLS names."""
    path = os.environ.get("HUB3D_STANDIN_CALLS", "")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"call": call, "python": sys.executable, "pid": os.getpid(),
                                 "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                 **args}, default=str) + "\n")
