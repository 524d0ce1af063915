"""Fixtures of the hub tier: one real JupyterHub per session, a user with a running server, the
server notebook Run All'ed in that user's kernel, and a laptop venv that has only requests.

    hub          Hub: .url (the proxy), .api(method, path) as an admin, .user(name)
    hub_user     HubUser "alice", server running: .server_url, .proxy_url(port), .headers(),
                 .token, .login_session() (cookies, as a browser), .start(), .stop()
    served       the notebook run in alice's kernel (MODELS="inflate"): .kernel, .port,
                 .api_key, .url (through the proxy), .headers(), .outputs, .run_all()
    laptop       Laptop: .run(*client_args) runs client/sf3d_client.py from a venv with only
                 requests installed
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.hub.hub_process import Hub, HubUser, chp_missing
from tests.hub.kernel_ws import Executed, Kernel
from tests.servers import REPO, free_port

NOTEBOOK = REPO / "sf3d_api_server.ipynb"
CLIENT = REPO / "client" / "sf3d_client.py"
ACTIVITY_S = 2  # hub ↔ proxy ↔ server activity updates, seconds (default 300)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hub)


SLOW = "slow=tests.backends.testing:SlowBackend"  # a test backend that sleeps on request
FIGURES: dict[str, str] = {}  # measured on the way, printed at the end (docs/reliability.md)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("hub path figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<58} {value}")


def start_hub(base: Path, server_env: dict[str, str] | None = None, **kwargs: Any) -> Hub:
    if why := chp_missing():
        pytest.skip(why)
    # the repo on the servers' PYTHONPATH: kernels can serve the tests' slow backend
    env = {"PYTHONPATH": str(REPO), **(server_env or {})}
    return Hub(base, free_port(), secrets.token_hex(16), ACTIVITY_S).start(env, **kwargs)


@pytest.fixture(scope="package")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    # The page's 3D viewer from tests/js, as an offline lab serves it (there is no CDN here).
    viewer = {"HUB3D_VIEWER_DIR": str(REPO / "tests" / "js")}
    h = start_hub(tmp_path_factory.mktemp("hub"), server_env=viewer)
    yield h
    h.stop()


@pytest.fixture(scope="package")
def hub_user(hub: Hub) -> HubUser:
    return hub.user("alice").start()


@dataclass
class Served:
    user: HubUser
    kernel: Kernel
    port: int
    params: dict[str, Any]
    outputs: list[Executed] = field(default_factory=list)
    run_all_s: float = 0.0

    @property
    def url(self) -> str:
        return self.user.proxy_url(self.port).rstrip("/")

    @property
    def text(self) -> str:
        return "\n".join(o.text for o in self.outputs)

    @property
    def api_key(self) -> str:
        return str(self.kernel.execute("print(API_KEY)").text.strip())

    def headers(self) -> dict[str, str]:
        return {**self.user.headers(), "X-API-Key": self.api_key}

    def run_all(self, **params: Any) -> Served:
        """Run All again (after a kernel restart, say); waits until healthy through the proxy."""
        t0 = time.monotonic()
        self.outputs = self.kernel.run_notebook(NOTEBOOK, {**self.params, **params})
        wait_proxy_healthy(self.url, self.user.headers())
        self.run_all_s = time.monotonic() - t0
        return self


def wait_proxy_healthy(url: str, headers: dict[str, str], timeout: float = 60) -> None:
    end, last = time.monotonic() + timeout, ""
    while time.monotonic() < end:
        try:
            r = requests.get(f"{url}/health", headers=headers, timeout=5)
            if r.ok and r.json().get("status") in ("healthy", "degraded"):
                return
            last = f"{r.status_code} {r.text[:200]}"
        except (requests.RequestException, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy through the proxy: {last}")


@pytest.fixture(scope="package")
def served(hub_user: HubUser) -> Iterator[Served]:
    kernel = Kernel(hub_user)
    port = free_port()
    params = {"MODELS": f"inflate,{SLOW}", "PORT": port, "SAMPLE": True}
    s = Served(hub_user, kernel, port, params).run_all()
    FIGURES["Run All -> healthy through the proxy (first run)"] = f"{s.run_all_s:.1f} s"
    yield s
    try:  # best effort: a culling test may already have ended the kernel or the server
        kernel.execute("stop_all()" if "stop_all" in s.text else "pass", check=False,
                       timeout=60)
    except Exception:  # the hub's teardown below ends what is left
        pass
    kernel.shutdown()


@dataclass
class Laptop:
    python: Path
    cwd: Path

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("HUB3D_", "JUPYTERHUB_", "VIRTUAL_ENV", "PYTHON"))}
        return subprocess.run([str(self.python), str(self.cwd / "sf3d_client.py"), *args],
                              cwd=self.cwd, env={**clean, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture(scope="package")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Laptop:
    """A venv with requests and nothing else of ours, as on the laptop."""
    where = tmp_path_factory.mktemp("laptop")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(where / "venv")], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "requests"], check=True,
                   timeout=300)
    shutil.copy(CLIENT, where / "sf3d_client.py")
    return Laptop(python, where)
