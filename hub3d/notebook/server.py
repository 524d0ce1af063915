"""The server inside a notebook kernel: uvicorn in a daemon thread with its own event loop.

`start_server(...)` returns a `ServerHandle`; servers are kept in a registry keyed by port, so
re-running the cell stops the old one first. A port held by another process raises at once,
naming the holder; the startup wait has a deadline and watches the thread.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from hub3d.activity import kernel_ping
from hub3d.config import Settings
from hub3d.notebook.ports import PortInUse, bind_socket

__all__ = ["PortInUse", "ServerHandle", "block", "running_servers", "start_server", "stop_all"]

_SERVERS: dict[int, ServerHandle] = {}
_LOCK = threading.Lock()
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LOGGERS = ("hub3d", "uvicorn.error")


class _RingHandler(logging.Handler):
    """Keeps the last lines in memory for `handle.logs` and the panel."""

    def __init__(self, lines: collections.deque[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class ServerHandle:
    """One running server: `url`, `stop()`, `status()`, `logs` (recent lines), `log_path`."""

    def __init__(self, settings: Settings, server: Any, thread: threading.Thread,
                 handlers: list[logging.Handler], log_lines: collections.deque[str],
                 log_path: Path) -> None:
        self.settings, self._server, self._thread = settings, server, thread
        self._handlers, self._log_lines, self.log_path = handlers, log_lines, log_path
        self.started_at = time.time()
        self.port: int = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.root_path: str = server.config.root_path
        self.api_key = settings.api_key_value()

    @property
    def app(self) -> Any:
        return self._server.config.app

    @property
    def catalog(self) -> Any:
        """The served models: what each is, its Python, where its files are."""
        return self.app.state.catalog

    @property
    def logs(self) -> list[str]:
        return list(self._log_lines)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and bool(self._server.started)

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def status(self) -> dict[str, Any]:
        state = "running" if self.running else ("starting" if self._thread.is_alive()
                                                else "stopped")
        return {"state": state, "url": self.url, "port": self.port,
                "models": list(self.settings.models), "data_dir": str(self.settings.data_dir),
                "uptime_s": round(time.time() - self.started_at, 1) if state == "running" else 0,
                "started_at": self.started_at, "root_path": self.root_path,
                "log_path": str(self.log_path)}

    def problems(self) -> dict[str, str]:
        """Models that cannot be served (unknown name, missing code or weights) and why."""
        pool = getattr(self.app.state, "pool", None)
        if pool is None:
            return {}
        described = {name: pool.describe(name) for name in pool.models}
        return {n: d["error"] or d["state"] for n, d in described.items() if d["state"] == "failed"}

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down uvicorn (the lifespan stops the scheduler and workers) and join."""
        self.app.state.activity.stop()
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():  # a stuck request: stop waiting for it
            self._server.force_exit = True
            self._thread.join(5.0)
        for name in _LOGGERS:
            for handler in self._handlers:
                logging.getLogger(name).removeHandler(handler)
        for handler in self._handlers:
            handler.close()
        with _LOCK:
            if _SERVERS.get(self.port) is self:
                del _SERVERS[self.port]

    def __repr__(self) -> str:
        return f"<hub3d server {self.status()['state']} at {self.url}>"


def _attach_logs(log_path: Path) -> tuple[list[logging.Handler], collections.deque[str]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lines: collections.deque[str] = collections.deque(maxlen=500)
    handlers: list[logging.Handler] = [logging.FileHandler(log_path), _RingHandler(lines)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        for handler in handlers:
            logger.addHandler(handler)
    return handlers, lines


def start_server(port: int = 9299, models: str | list[str] = "inflate",
                 data_dir: str | Path = "~/hub3d-data", api_key: str | None = None, *,
                 host: str = "127.0.0.1", root_path: str = "", startup_timeout: float = 60.0,
                 **settings: Any) -> ServerHandle:
    """Start the API in a daemon thread and return once it accepts connections."""
    import uvicorn

    from hub3d.api.app import create_app

    with _LOCK:
        old = _SERVERS.get(port)
    if old is not None:  # the cell was run again: replace the server it started
        old.stop()
    # root_path in the settings too: status_url, download_url and messages carry the prefix
    cfg = Settings.model_validate({"port": port, "models": models, "data_dir": data_dir,
                                   "api_key": api_key, "host": host, "root_path": root_path,
                                   **settings})
    sock = bind_socket(host, port)  # raises PortInUse now, not after a hang
    if port == 0:  # any free port: the one the OS picked is the server's from here on
        port = int(sock.getsockname()[1])
        cfg = cfg.model_copy(update={"port": port})
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.data_dir / "logs" / f"server-{port}.log"
    handlers, lines = _attach_logs(log_path)
    server = uvicorn.Server(uvicorn.Config(
        create_app(cfg), host=host, port=port, loop="asyncio", log_config=None,
        lifespan="on", access_log=False, timeout_graceful_shutdown=5,
        root_path=root_path))  # behind the hub proxy's prefix: /docs finds its openapi.json
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"hub3d-server-{port}", daemon=True)
    handle = ServerHandle(cfg, server, thread, handlers, lines, log_path)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            why = "did not start in time" if thread.is_alive() else "stopped during startup"
            handle.stop(timeout=5)
            sock.close()
            tail = "\n".join(lines) or "(no log lines)"
            raise RuntimeError(f"hub3d server on port {port} {why}. Log {log_path}:\n{tail}")
        time.sleep(0.01)
    with _LOCK:
        _SERVERS[port] = handle
    if (ping := kernel_ping()) is not None:  # in a notebook: the kernel culler sees the work
        handle.app.state.activity.add_ping(ping)
    logging.getLogger("hub3d").info("hub3d serving %s at %s (data dir %s)",
                                    ",".join(cfg.models), handle.url, cfg.data_dir)
    for name, why in handle.problems().items():
        logging.getLogger("hub3d").warning("model %s cannot be served: %s", name, why)
    return handle


def running_servers() -> dict[int, ServerHandle]:
    with _LOCK:
        return dict(_SERVERS)


def stop_all() -> None:
    for handle in running_servers().values():
        handle.stop()


class _Terminated(Exception):
    """SIGTERM from `hub3d stop`/`restart`: stop like an interrupt would."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


# block()'s heartbeat, and the part of it `hub3d watch` (headless) waits for in the notebook's
# output: one definition, so the two cannot drift apart.
HEARTBEAT = "hub3d {state} at {url}"
RUNNING_MARK = HEARTBEAT.format(state="running", url="")


def heartbeat_line(state: str, url: str, uptime_s: float) -> str:
    return (f"[{time.strftime('%H:%M:%S')}] {HEARTBEAT.format(state=state, url=url)}"
            f", up {uptime_s:.0f} s")


def block(handle: ServerHandle, heartbeat_s: float = 60.0, *, print_fn: Any = print) -> str:
    """Keep the kernel busy (papermill waits on this cell) with a heartbeat line; an interrupt
    or SIGTERM stops the server cleanly. Returns why it ended."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    reason = "server stopped"
    try:
        next_beat = time.monotonic()
        while (handle := running_servers().get(handle.port, handle)).running:
            # (follows the registry: the panel's restart button makes a new handle)
            if time.monotonic() >= next_beat:
                status = handle.status()
                print_fn(heartbeat_line(status["state"], handle.url, status["uptime_s"]),
                         flush=True)
                next_beat += heartbeat_s
            time.sleep(min(1.0, heartbeat_s))
    except KeyboardInterrupt:
        reason = "interrupted"
    except _Terminated:
        reason = "terminated"
    finally:
        signal.signal(signal.SIGTERM, previous)
        handle.stop()
        print_fn(f"hub3d stopped ({reason})", flush=True)
    return reason

