"""A python3 kernelspec for this interpreter in a temporary JUPYTER_PATH, and the environment
papermill runs the notebook with (the repo on PYTHONPATH), leaving the user's Jupyter alone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def notebook_env(tmp: Path) -> dict[str, str]:
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)", "language": "python"}))
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB3D_", "JUPYTERHUB_"))}
    return {**env, "JUPYTER_PATH": str(tmp / "jupyter"), "PYTHONPATH": path}
