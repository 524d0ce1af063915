"""A worker ends with the process that started it (kernel restart, server stop, OOM kill of the
control plane), even in the middle of a job that would otherwise hold the GPU until it ends."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(poll_s: float = 1.0) -> None:
    """Linux: the kernel sends SIGKILL when the parent dies. Elsewhere (and for the moment
    before prctl took effect) a daemon thread sees the parent change and exits."""
    # the control plane names itself: a parent that died before this line is seen too
    parent = int(os.environ.get("HUB3D_PARENT_PID") or os.getppid())
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl here: the watchdog below still works

    def watch() -> None:
        while not stop.wait(poll_s):
            if os.getppid() != parent:
                os._exit(70)  # orphaned: nobody reads our results any more

    stop = threading.Event()
    if os.getppid() != parent:
        os._exit(70)
    threading.Thread(target=watch, name="hub3d-lifeline", daemon=True).start()
