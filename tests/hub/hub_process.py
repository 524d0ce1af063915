"""A real JupyterHub on 127.0.0.1 for the hub tier: configurable-http-proxy from npm, a local
process spawner (no root needed), the dummy authenticator, users and tokens made through the
hub's REST API. Ports are picked free; everything lives in one temporary folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.servers import REPO, free_port

__all__ = ["CHP", "Hub", "HubUser", "chp_missing"]

CHP = REPO / "tests" / "hub" / "js" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "hub3d-tests"  # the dummy authenticator's shared password
BIN = Path(sys.executable).parent

_CONFIG = """\
import os
from jupyterhub.spawner import SimpleLocalProcessSpawner

cfg = {cfg!r}
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = cfg["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = cfg["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{cfg['proxy_api_port']}}"
c.ConfigurableHTTPProxy.command = [cfg["chp"]]
c.ConfigurableHTTPProxy.auth_token = cfg["proxy_token"]
c.JupyterHub.db_url = "sqlite:///" + cfg["dir"] + "/hub.sqlite"
c.JupyterHub.cookie_secret_file = cfg["dir"] + "/cookie_secret"
c.JupyterHub.pid_file = cfg["dir"] + "/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = cfg["password"]
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = SimpleLocalProcessSpawner
c.SimpleLocalProcessSpawner.home_dir_template = cfg["dir"] + "/home/{{username}}"
c.Spawner.cmd = [cfg["singleuser"]]
# the tests run as root in CI; a real hub spawns as the user
c.Spawner.args = ["--allow-root", *cfg["server_args"]]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = cfg["server_env"]
# how often the hub reads the proxy's activity, and the servers report theirs: seconds, not
# the 5 min default, so the culling tests take seconds too
c.JupyterHub.last_activity_interval = cfg["activity_s"]
c.JupyterHub.services = [{{"name": "hub3d-tests", "api_token": cfg["admin_token"]}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["hub3d-tests"]}}]
c.JupyterHub.cleanup_servers = True
if cfg["public"]:  # as most hubs: JUPYTERHUB_PUBLIC_URL / _PUBLIC_HUB_URL reach the servers
    c.JupyterHub.public_url = f"http://127.0.0.1:{{cfg['port']}}/"
"""


def chp_missing() -> str | None:
    if not CHP.exists():
        return f"configurable-http-proxy is not installed: run npm ci --prefix {CHP.parents[2]}"
    if shutil.which("node") is None:
        return "node is not installed (configurable-http-proxy runs on it)"
    return None


@dataclass
class HubUser:
    hub: Hub
    name: str
    token: str  # made through the REST API, like /hub/token would

    @property
    def server_url(self) -> str:
        """The user's Jupyter server through the hub's proxy, e.g. http://127.0.0.1:P/user/u/."""
        return f"{self.hub.url}/user/{self.name}/"

    def proxy_url(self, port: int) -> str:
        return f"{self.server_url}proxy/{port}/"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def model(self) -> dict[str, Any]:
        return dict(self.hub.api("GET", f"/users/{self.name}").json())

    def server_ready(self) -> bool:
        return bool(self.model()["servers"].get("", {}).get("ready"))

    def start(self, timeout: float = 90.0) -> HubUser:
        """Start the server (as Start My Server would) and wait until it is ready."""
        r = self.hub.api("POST", f"/users/{self.name}/server", ok=(201, 202, 400))
        # 400: it is already running
        end = time.monotonic() + timeout
        while not self.server_ready():
            if time.monotonic() > end:
                raise TimeoutError(f"server of {self.name} not ready after {timeout} s: {r.text}")
            time.sleep(0.3)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the server (as Stop My Server would) and wait until it is gone."""
        self.hub.api("DELETE", f"/users/{self.name}/server", ok=(202, 204, 400))
        end = time.monotonic() + timeout
        while self.model()["servers"].get(""):
            if time.monotonic() > end:
                raise TimeoutError(f"server of {self.name} still there after {timeout} s")
            time.sleep(0.3)

    def login_session(self) -> requests.Session:
        """A browser-like session: logged in with the password, hub cookies set."""
        s = requests.Session()
        login = f"{self.hub.url}/hub/login"
        s.get(login, timeout=30)
        r = s.post(login, data={"username": self.name, "password": PASSWORD,
                                "_xsrf": s.cookies.get("_xsrf", "")}, timeout=30)
        r.raise_for_status()
        return s


@dataclass
class Hub:
    """`url` is the public address (the proxy); `api(...)` calls the REST API as an admin."""

    dir: Path
    port: int
    admin_token: str
    activity_s: int
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, HubUser] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    @property
    def log_path(self) -> Path:
        return self.dir / "hub.log"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no hub log)"

    def api(self, method: str, path: str, ok: tuple[int, ...] = (200, 201),
            **kwargs: Any) -> requests.Response:
        r = requests.request(method, f"{self.api_url}{path}", timeout=30,
                             headers={"Authorization": f"token {self.admin_token}"}, **kwargs)
        if r.status_code not in ok:
            raise RuntimeError(f"hub API {method} {path}: {r.status_code} {r.text[:300]}")
        return r

    def user(self, name: str) -> HubUser:
        """The user, made through the REST API on first use, with a token of its own."""
        if name not in self.users:
            self.api("POST", f"/users/{name}", ok=(201, 409))
            r = self.api("POST", f"/users/{name}/tokens",
                         json={"note": "laptop", "expires_in": 86400})
            self.users[name] = HubUser(self, name, r.json()["token"])
        return self.users[name]

    def start(self, server_env: dict[str, str] | None = None,
              server_args: list[str] | None = None, public_url: bool = True,
              timeout: float = 60.0) -> Hub:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(self.activity_s), **(server_env or {})}
        cfg = {"port": self.port, "hub_port": free_port(), "proxy_api_port": free_port(),
               "chp": str(CHP), "proxy_token": os.urandom(16).hex(), "dir": str(self.dir),
               "password": PASSWORD, "singleuser": str(BIN / "jupyterhub-singleuser"),
               "server_args": server_args or [], "server_env": env,
               "activity_s": self.activity_s, "admin_token": self.admin_token,
               "public": public_url}
        (self.dir / "jupyterhub_config.py").write_text(_CONFIG.format(cfg=cfg))
        run_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        run_env = {k: v for k, v in run_env.items() if not k.startswith("JUPYTERHUB_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "jupyterhub"), "-f", str(self.dir / "jupyterhub_config.py")],
                cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=run_env,
                start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if requests.get(f"{self.api_url}/", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                self.stop()
                raise TimeoutError(f"jupyterhub not up after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the hub; cleanup_servers stops the users' servers, then the process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

