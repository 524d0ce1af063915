"""Activity tied to work: while jobs are queued or running, or requests came in the last
`activity_window_s`, tell the hub (and the notebook kernel) the server is in use; when idle,
say nothing, so the hub's idle culler can give the GPU back.

The hub learns it through its activity API with the server's own token
(`JUPYTERHUB_ACTIVITY_URL`, `JUPYTERHUB_API_TOKEN`: set in every kernel and terminal the hub
spawns). A kernel counts as active when it sends something on iopub: `kernel_ping` does, with a
display update no output shows. Requests marked `X-Hub3d-Monitor` (the panel, `hub3d watch`)
are not use: a panel left open must not keep the GPU forever.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["MONITOR_HEADER", "ActivityKeeper", "install_activity", "kernel_ping"]

MONITOR_HEADER = "X-Hub3d-Monitor"
_log = logging.getLogger("hub3d.activity")
Ping = Callable[[], None]


class ActivityKeeper:
    def __init__(self, busy: Callable[[], bool], *, interval_s: float, window_s: float,
                 env: Mapping[str, str] | None = None) -> None:
        self.busy, self.interval_s, self.window_s = busy, interval_s, window_s
        self.env = dict(env if env is not None else os.environ)
        self.last_request = 0.0  # monotonic; 0: none yet
        self.pings: list[Ping] = []
        if self.env.get("JUPYTERHUB_ACTIVITY_URL") and self.env.get("JUPYTERHUB_API_TOKEN"):
            self.pings.append(self.ping_hub)
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def in_use(self) -> bool:
        recent = self.last_request and time.monotonic() - self.last_request < self.window_s
        try:
            return bool(recent) or self.busy()
        except Exception:  # the store closing at shutdown: not in use
            return False

    def ping_hub(self) -> None:
        import requests

        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        name = self.env.get("JUPYTERHUB_SERVER_NAME", "")
        r = requests.post(self.env["JUPYTERHUB_ACTIVITY_URL"], timeout=10,
                          headers={"Authorization": f"token {self.env['JUPYTERHUB_API_TOKEN']}"},
                          json={"servers": {name: {"last_activity": now}}, "last_activity": now})
        r.raise_for_status()

    def tick(self) -> bool:
        """One check: pings everyone when in use; whether it did."""
        if not self.in_use():
            return False
        for ping in list(self.pings):
            try:
                ping()
            except Exception as exc:  # the hub restarting: try again next tick
                _log.warning("activity ping failed: %s", exc)
        self.sent += 1
        return True

    def start(self) -> ActivityKeeper:
        if self._thread is None and self.pings:
            self._thread = threading.Thread(target=self._loop, name="hub3d-activity",
                                            daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def add_ping(self, ping: Ping) -> None:
        self.pings.append(ping)
        self.start()

    def stop(self) -> None:
        self._stop.set()


def install_activity(app: Any, settings: Any) -> ActivityKeeper:
    """Count requests (but monitors') and start the keeper; `app.state.activity`."""
    state = app.state

    def busy() -> bool:
        store = getattr(state, "store", None)
        if store is None:
            return False
        counts = store.counts()
        return bool(counts.get("queued", 0) or counts.get("processing", 0))

    keeper = ActivityKeeper(busy, interval_s=settings.activity_interval_s,
                            window_s=settings.activity_window_s)
    app.add_middleware(_CountRequests, keeper=keeper)
    state.activity = keeper.start()
    return keeper


class _CountRequests:
    """Plain ASGI (no buffering, so event streams still stream): notes each request's time."""

    _marker = MONITOR_HEADER.lower().encode()

    def __init__(self, app: Callable[..., Awaitable[None]], keeper: ActivityKeeper) -> None:
        self.app, self.keeper = app, keeper

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not any(k == self._marker for k, _ in scope["headers"]):
            self.keeper.last_request = time.monotonic()
        await self.app(scope, receive, send)


def kernel_ping() -> Ping | None:
    """A ping that makes this ipykernel count as active to the Jupyter server's kernel culler;
    None outside a kernel."""
    try:
        from IPython import get_ipython
        from IPython.display import update_display
    except ImportError:
        return None
    if get_ipython() is None or not hasattr(get_ipython(), "kernel"):
        return None

    def ping() -> None:
        # an update to a display nobody shows: a message on iopub, nothing on screen
        update_display({"text/plain": ""}, raw=True, display_id="hub3d-activity")

    return ping
