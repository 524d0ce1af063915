"""Row 12 of the hub findings: the quickstart's install line for the `inflate`-only path must work
when the server's Python is a venv (pip refuses `--user` there) as well as outside one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.servers import REPO

QUICKSTART = REPO / "SF3D_JUPYTERHUB_QUICKSTART.md"


def install_block() -> str:
    """The bash block of step 1 that installs this checkout for `inflate`."""
    text = QUICKSTART.read_text()
    section = text[text.index("Only trying the `inflate` model?"):]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no install block after 'Only trying the `inflate` model?'"
    return match.group(1)


def run_block(python: Path, home: Path) -> subprocess.CompletedProcess[str]:
    # The documented lines as written, with PY set to the kernel's Python; PIP_NO_DEPS keeps the
    # test to hub3d itself (its dependencies are not what differs between the two cases).
    script = f"{install_block()}\n\"$PY\" -c 'import hub3d, sys; print(hub3d.__file__)'\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PYTHONUSERBASE=str(home / ".local"), PIP_NO_DEPS="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    script = script.replace("PY=python3", f"PY={python}", 1)
    return subprocess.run(["bash", "-ec", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_quickstart_install_line_works_in_a_venv_server_env(tmp_path: Path) -> None:
    assert "PY=python3" in install_block()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    run = run_block(python, tmp_path / "home")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == str(REPO / "hub3d" / "__init__.py")
    assert not (tmp_path / "home" / ".local").exists()  # into the venv, not the user site


def test_quickstart_install_line_uses_the_user_site_outside_a_venv(tmp_path: Path) -> None:
    base = Path(getattr(sys, "_base_executable", sys.executable))
    run = run_block(base, tmp_path / "home")  # PYTHONUSERBASE: the user site is in tmp_path
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == str(REPO / "hub3d" / "__init__.py")
    assert list((tmp_path / "home" / ".local").rglob("*hub3d*"))  # in the user site
