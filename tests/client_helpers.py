"""Shared pieces of the client tests: the client module by path, models, a hub stand-in."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType

from tests.local_http import serving

REPO = Path(__file__).resolve().parents[1]
CLIENT_PY = REPO / "client" / "sf3d_client.py"
SLOW = "tests.backends.testing:SlowBackend"


def load_client() -> ModuleType:
    """client/ is a folder of copy-anywhere scripts, not a package: import the file itself."""
    if "sf3d_client" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sf3d_client", CLIENT_PY)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["sf3d_client"] = module
        spec.loader.exec_module(module)
    return sys.modules["sf3d_client"]


def models(with_slow: bool = False) -> str:
    """--models value: inflate first (the default), plus `slow` for timing-sensitive tests."""
    return "inflate" + (f",slow={SLOW}" if with_slow else "")


def sample_png() -> bytes:
    """The repo's sample photo (a T-shirt on a plain background)."""
    return (REPO / "samples" / "tshirt.png").read_bytes()


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a client subprocess: none of the developer's hub3d settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HUB3D_") and k != "JUPYTERHUB_TOKEN"}
    env.update(extra)
    return env


class _LoginRedirect(BaseHTTPRequestHandler):
    """What JupyterHub does to a request without a valid token: 302 to its login page."""

    def _redirect(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(302)
        self.send_header("Location", f"/hub/login?next={self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _redirect

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def hub_login_standin() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 answering every request with the hub's login redirect."""
    with serving(_LoginRedirect) as url:
        yield url
