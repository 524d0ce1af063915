"""Run kernel_setup/setup_sam3d_env.sh with recorded fakes of its external tools first on PATH.

A fake is a two-line script printing a file from tests/data (what the real tool printed); hub3d's
own code and the recipe itself run for real.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "kernel_setup" / "setup_sam3d_env.sh"
DATA = Path(__file__).resolve().parent / "data"


def fake_tools(folder: Path, **recorded: str) -> Path:
    """`name=recorded file under tests/data` → a bin folder with one fake per tool."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool, record in recorded.items():
        script = folder / tool.replace("_", "-")
        script.write_text(f"#!/bin/sh\ncat {shlex.quote(str(DATA / record))}\n")
        script.chmod(0o755)
    return folder


def run_recipe(tmp: Path, *args: str, tools: Path | None = None,
               dry: bool = True) -> subprocess.CompletedProcess[str]:
    """The recipe with PATH = the fakes + the system's basic tools (no conda found elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB3D_", "CONDA"))}
    (tmp / "home").mkdir(exist_ok=True)
    env.update(HOME=str(tmp / "home"), PATH=os.pathsep.join(
        [str(tools)] * bool(tools) + ["/usr/bin", "/bin"]))
    cmd = ["bash", str(RECIPE), *(["--dry-run"] if dry else []),
           "--env", str(tmp / "env"), "--data-dir", str(tmp / "data"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def steps(stdout: str) -> list[str]:
    """The commands the recipe runs (or would run), without the '+ '."""
    return [line[2:] for line in stdout.splitlines() if line.startswith("+ ")]
