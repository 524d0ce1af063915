"""The `hub3d watch` line SF3D_JUPYTERHUB_QUICKSTART.md gives must outlive the terminal it was
typed in: typed into an interactive bash on a real pseudo-terminal, which is then closed (the
hangup a closed hub terminal tab gives), the watch keeps running."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.servers import REPO, free_port

QUICKSTART = REPO / "SF3D_JUPYTERHUB_QUICKSTART.md"


def documented_watch_line() -> str:
    """The command line (its comment dropped) that starts `hub3d watch` in the quickstart."""
    blocks = re.findall(r"```bash\n(.*?)```", QUICKSTART.read_text(), re.S)
    lines = [line for block in blocks for line in block.splitlines() if "hub3d watch" in line]
    assert len(lines) == 1, lines
    return lines[0].split("  #", 1)[0].strip()


def watch_processes(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        cmd, env = proc.info["cmdline"] or [], proc.info["environ"] or {}
        if "watch" in cmd and env.get("HOME") == str(home):
            found.append(proc)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    for proc in watch_processes(home):
        proc.kill()


def test_the_documented_watch_survives_closing_its_terminal(home: Path) -> None:
    # a recorded headless run (nothing listens on its port; the first restart would come only
    # after 3 failed checks 30 s apart, long after this test)
    state = home / "hub3d-data" / "headless"
    state.mkdir(parents=True)
    (state / "run.json").write_text(json.dumps(
        {"pid": 1, "port": free_port(), "notebook": str(REPO / "sf3d_api_server.ipynb"),
         "params": {}}))
    env = {"HOME": str(home), "TERM": "dumb", "PS1": "$ ",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    # a session of its own whose controlling terminal is the pty: a terminal as a hub gives one
    interactive = f'exec bash --norc --noprofile -i <>"{tty}" >&0 2>&0'
    shell = subprocess.Popen(
        ["bash", "--norc", "--noprofile", "-c", interactive],
        env=env, cwd=REPO, start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(slave)
    try:
        os.write(master, (documented_watch_line() + "\n").encode())
        deadline = time.monotonic() + 30
        while not watch_processes(home):
            assert time.monotonic() < deadline, "the documented line started no `hub3d watch`"
            assert shell.poll() is None, "the shell ended before starting the watch"
            _drain(master)
        time.sleep(1.0)  # the watch's first check
    finally:
        os.close(master)  # the terminal goes away: SIGHUP to its session
    shell.wait(20)
    time.sleep(2.0)
    alive = watch_processes(home)
    assert alive, "`hub3d watch` ended with the terminal that started it"
    assert all(p.status() != psutil.STATUS_ZOMBIE for p in alive)


def _drain(fd: int) -> None:
    """Read what the shell wrote (prompt, echo), so it never blocks on a full terminal."""
    if select.select([fd], [], [], 0.1)[0]:
        os.read(fd, 65536)
