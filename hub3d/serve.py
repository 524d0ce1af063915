"""`hub3d serve`: the server in the foreground (Ctrl-C / SIGTERM stop it cleanly)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from pydantic import ValidationError

from hub3d.config import Settings

__all__ = ["configure_logging", "register", "run_server", "settings_from_args"]

_FLAGS = {  # flag → Settings field; unset flags fall back to env vars, then defaults
    "port": int, "host": str, "models": str, "data_dir": str, "api_key": str,
    "max_queue_size": int, "max_concurrent": int, "devices": str, "result_ttl_hours": float,
    "root_path": str, "log_level": str, "viewer_dir": str, "jobs_per_worker": int,
    "job_timeout_s": float, "warmup": str, "ray_address": str,
}


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_server(settings: Settings) -> None:
    """Serve until stopped. Raises PortInUse (naming the holder) before announcing anything."""
    import uvicorn

    from hub3d.api.app import create_app
    from hub3d.notebook.ports import bind_socket

    configure_logging(settings.log_level)
    # Bound here and handed to uvicorn as is: a taken port fails before the announcement, and
    # no other process can take the port between this check and uvicorn's start.
    sock = bind_socket(settings.host, settings.port,
                       another="--port {port}, or --port 0 for any free one")
    if settings.port == 0:  # the port the OS picked is the one to announce and to link to
        settings = settings.model_copy(update={"port": int(sock.getsockname()[1])})
    logging.getLogger("hub3d").info(
        "hub3d serving %s on http://%s:%d (data dir %s, API key %s)", ",".join(settings.models),
        settings.host, settings.port, settings.data_dir, "set" if settings.api_key else "not set")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # that was there before it: make that handler a clean exit instead of a traceback or -15.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_cleanly)
    # root_path on the server, not the app (FastAPI deprecates its own): /docs, status_url and
    # download_url carry the proxy's prefix
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            root_path=settings.root_path, loop="asyncio",
                            log_level=settings.log_level,
                            access_log=settings.log_level == "debug", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])  # a failed startup exits 3, as uvicorn.run
    finally:
        sock.close()
    logging.getLogger("hub3d").info("hub3d stopped")


def _exit_cleanly(signum: int, frame: object) -> None:
    logging.getLogger("hub3d").info("hub3d stopped (%s)", signal.Signals(signum).name)
    raise SystemExit(0)


def settings_from_args(args: argparse.Namespace) -> Settings:
    given: dict[str, Any] = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.preload:
        given["preload"] = True
    return Settings(**given)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"hub3d serve: invalid settings:\n{exc}")
        return 2
    from hub3d.notebook.ports import PortInUse

    try:
        run_server(settings)
    except PortInUse as exc:
        print(f"hub3d serve: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the API server in the foreground")
    p.add_argument("--port", type=int, help="port (env PORT, default 9299; 0: any free one)")
    p.add_argument("--host", help="bind address (default 127.0.0.1: reach it through a tunnel)")
    p.add_argument("--models", help="comma list; the first is the default (env HUB3D_MODELS)")
    p.add_argument("--data-dir", dest="data_dir", help="jobs and results (env HUB3D_DATA_DIR)")
    p.add_argument("--api-key", dest="api_key", help="require X-API-Key (env HUB3D_API_KEY)")
    p.add_argument("--max-queue-size", dest="max_queue_size", type=int)
    p.add_argument("--max-concurrent", dest="max_concurrent", type=int,
                   help="workers per device per model")
    p.add_argument("--devices", help="auto | cpu | cuda:0,cuda:1 (env HUB3D_DEVICES)")
    p.add_argument("--result-ttl-hours", dest="result_ttl_hours", type=float)
    p.add_argument("--root-path", dest="root_path", help="URL prefix when behind a proxy")
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--viewer-dir", dest="viewer_dir",
                   help="local copy of the page's 3D viewer, offline labs (env HUB3D_VIEWER_DIR)")
    p.add_argument("--jobs-per-worker", dest="jobs_per_worker", type=int,
                   help="jobs one worker runs at once on its one model copy (env "
                        "HUB3D_JOBS_PER_WORKER; default: per backend, SF3D 4 on a GPU)")
    p.add_argument("--job-timeout-s", dest="job_timeout_s", type=float,
                   help="fail a job still running after this long (env HUB3D_JOB_TIMEOUT_S)")
    p.add_argument("--warmup", choices=("auto", "on", "off"),
                   help="a warm-up job after each load (env HUB3D_WARMUP; auto: where it pays)")
    p.add_argument("--ray-address", dest="ray_address",
                   help="run the models on this Ray cluster (`auto`: the one this machine is "
                        "part of; env HUB3D_RAY_ADDRESS; needs hub3d[ray])")
    p.add_argument("--preload", action="store_true", help="load models at start, not first job")
    p.set_defaults(func=_serve)
