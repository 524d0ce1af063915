"""Ways in from the laptop: hub proxy, ngrok, SSH tunnel; the API key; ready-to-paste commands."""

from __future__ import annotations

import getpass
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "WayIn", "format_ways_in", "hub_proxy_url", "notebook_path", "proxy_root_path",
    "resolve_api_key", "server_proxy_check", "start_ngrok", "terminal_command", "ways_in",
]

KEY_FILE = "api_key"


def resolve_api_key(api_key: str | None, data_dir: str | Path) -> str:
    """The given key, else the one saved in the data dir, else a new one saved there (0600)."""
    if api_key:
        return api_key
    path = Path(data_dir).expanduser() / KEY_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    while key.startswith("-"):  # typed as `--api-key KEY`, it would read as an option
        key = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def proxy_root_path(port: int, env: Mapping[str, str] | None = None) -> str:
    """`/user/<name>/proxy/<port>` on a hub (FastAPI root_path, so /docs works), else ''."""
    prefix = (env if env is not None else os.environ).get("JUPYTERHUB_SERVICE_PREFIX")
    return f"{prefix.rstrip('/')}/proxy/{port}" if prefix else ""


def hub_proxy_url(port: int, hub_url: str | None = None,
                  env: Mapping[str, str] | None = None) -> str | None:
    """`https://<hub>/user/<name>/proxy/<port>/`, or None when the hub's address is unknown.

    The user and prefix come from JUPYTERHUB_SERVICE_PREFIX; the address from HUB_URL, else
    JUPYTERHUB_PUBLIC_URL (this *server's* public URL, already ending in /user/<name>/), else
    JUPYTERHUB_PUBLIC_HUB_URL (the hub's, ending in /hub/)."""
    env = env if env is not None else os.environ
    root = proxy_root_path(port, env)
    if not root:
        return None
    if hub_url:
        return f"{_hub_base(hub_url)}{root}/"
    if server_url := env.get("JUPYTERHUB_PUBLIC_URL"):
        return f"{server_url.rstrip('/')}/proxy/{port}/"
    if public_hub := env.get("JUPYTERHUB_PUBLIC_HUB_URL"):
        return f"{_hub_base(public_hub)}{root}/"
    return None


def _hub_base(url: str) -> str:
    """The hub's origin (and any base path) from its URL, with or without the /hub/ part."""
    base = url.rstrip("/")
    return base[: -len("/hub")] if base.endswith("/hub") else base


def terminal_command(*args: str) -> str:
    """A hub3d command that works in a hub terminal: a login shell resets PATH, so name this
    kernel's Python rather than rely on a `hub3d` script being found."""
    import shlex

    return " ".join([shlex.quote(sys.executable), "-m", "hub3d", *map(shlex.quote, args)])


def notebook_path(default: str = "sf3d_api_server.ipynb") -> str:
    """This notebook's file, for commands that name it: the Jupyter server tells the kernel
    (JPY_SESSION_NAME), so a renamed copy is named right; else `default` in the kernel's cwd."""
    named = os.environ.get("JPY_SESSION_NAME", "")
    if named.endswith(".ipynb") and Path(named).is_file():
        return str(Path(named).resolve())
    return str(Path(default).resolve())


def _server_python() -> str | None:
    """The Python running the Jupyter server: the kernel's parent, when it is one. Its argv[0]
    (e.g. /env/bin/python), not /proc/<ppid>/exe: that resolves a venv's symlink to the base
    interpreter, which lacks the venv's packages."""
    try:
        exe = os.readlink(f"/proc/{os.getppid()}/exe")
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    cmd = b" ".join(argv).decode(errors="replace")
    if "jupyter" not in cmd or "python" not in Path(exe).name:
        return None
    first = argv[0].decode(errors="replace") if argv and argv[0] else ""
    return first if first.startswith("/") and os.access(first, os.X_OK) else exe


def server_proxy_check() -> str | None:
    """None when jupyter-server-proxy is in the server env, else what to do about it."""
    python = _server_python()
    if python is None:
        found = importlib.util.find_spec("jupyter_server_proxy") is not None
    else:
        probe = subprocess.run([python, "-c", "import jupyter_server_proxy"],
                               capture_output=True, timeout=30)
        found = probe.returncode == 0
    if found:
        return None
    target = python or "the Python that runs your Jupyter server"
    in_venv = python is not None and (Path(python).parent.parent / "pyvenv.cfg").is_file()
    user = "" if in_venv else " --user"  # --user is refused inside a venv
    return (f"jupyter-server-proxy is not installed in the server env ({target}): run "
            f"`{python or 'python'} -m pip install{user} jupyter-server-proxy` in a hub terminal,"
            " then restart your server (File > Hub Control Panel > Stop My Server, then Start)."
            " Or ask your hub admin to add it; meanwhile use TUNNEL='ngrok' or an SSH tunnel.")


def start_ngrok(port: int, authtoken: str | None, basic_auth: str | None = None) -> str:
    """Open an ngrok tunnel to the port; returns its public https URL."""
    if importlib.util.find_spec("pyngrok") is None:
        raise RuntimeError("TUNNEL='ngrok' needs pyngrok: run `%pip install pyngrok`, then "
                           "re-run this cell (or use TUNNEL='proxy').")
    if not authtoken:
        raise RuntimeError("TUNNEL='ngrok' needs NGROK_AUTHTOKEN (free account: "
                           "dashboard.ngrok.com > Your Authtoken); set it in the parameters cell.")
    from pyngrok import conf, ngrok

    conf.get_default().auth_token = authtoken
    options = {"basic_auth": [basic_auth]} if basic_auth else {}
    tunnel = ngrok.connect(str(port), "http", **options)
    return str(tunnel.public_url).replace("http://", "https://")


@dataclass
class WayIn:
    name: str
    url: str
    headers: dict[str, str]
    notes: list[str] = field(default_factory=list)
    client_flags: str = ""

    def page_url(self, api_key: str | None) -> str:
        """The page at / for a browser; the key rides in the fragment, never sent to a server."""
        url = self.url if self.url.endswith("/") else self.url + "/"
        return f"{url}#key={quote(api_key, safe='')}" if api_key else url

    def commands(self) -> list[str]:
        h = " ".join(f'-H "{k}: {v}"' for k, v in self.headers.items())
        url = self.url.rstrip("/")
        return [
            f"python sf3d_client.py photo.png --server {url}{self.client_flags}",
            f"curl {h} {url}/health",
            f"curl {h} -F image=@photo.png {url}/generate      # -> job_id",
            f"curl {h} {url}/job/JOB_ID",
            f"curl {h} -o photo.glb {url}/job/JOB_ID/download",
        ]


def ways_in(port: int, tunnel: str, *, api_key: str | None, hub_url: str | None = None,
            ngrok_url: str | None = None, env: Mapping[str, str] | None = None) -> list[WayIn]:
    """Each way the laptop can reach the server, most convenient first."""
    if tunnel not in ("proxy", "ngrok", "none"):
        raise ValueError(f"TUNNEL must be 'proxy', 'ngrok' or 'none', not {tunnel!r}")
    key = {"X-API-Key": "$HUB3D_API_KEY"} if api_key else {}
    ways: list[WayIn] = []
    if tunnel == "proxy":
        url = hub_proxy_url(port, hub_url, env)
        if url is None:
            root = proxy_root_path(port, env) or f"/user/YOUR-NAME/proxy/{port}"
            ways.append(WayIn("hub proxy", f"https://YOUR-HUB{root}/",
                              {"Authorization": "token $JUPYTERHUB_TOKEN", **key},
                              ["The hub's address is unknown here: set HUB_URL in the "
                               "parameters cell (e.g. 'https://hub.example.org')."],
                              ' --hub-token "$JUPYTERHUB_TOKEN"'))
        else:
            root = url.split("/user/", 1)[0]
            ways.append(WayIn("hub proxy", url, {"Authorization": "token $JUPYTERHUB_TOKEN",
                                                 **key},
                              [f"Make a token at {root}/hub/token and `export "
                               "JUPYTERHUB_TOKEN=...` on the laptop.",
                               "A 302 to the login page means the hub token is bad or missing.",
                               "The proxy cuts requests at 300 s: the client submits and polls.",
                               f"API docs in the browser: {url}docs"],
                              ' --hub-token "$JUPYTERHUB_TOKEN"'))
    if tunnel == "ngrok" and ngrok_url:
        ways.append(WayIn("ngrok", ngrok_url, {"ngrok-skip-browser-warning": "1", **key},
                          ["ngrok traffic bypasses the hub, but hub3d reports hub activity "
                           "itself while jobs run and for 5 min after a request; idle longer, "
                           "the hub's culler may stop the server."]))
    host, user = _ssh_host(), getpass.getuser()
    ways.append(WayIn("SSH tunnel", f"http://127.0.0.1:{port}", dict(key),
                      [f"On the laptop first: ssh -N -L {port}:127.0.0.1:{port} {user}@{host}"
                       "  (only where the hub's machines accept SSH)"]))
    return ways


def _ssh_host() -> str:
    """This machine's name as the laptop would ssh to it; a placeholder, not `localhost`
    (what a container's getfqdn often says), when it has none."""
    for name in (socket.getfqdn(), socket.gethostname()):
        if name and not name.startswith("localhost") and name not in ("127.0.0.1", "::1"):
            return name
    return "THIS-MACHINE"


def format_ways_in(ways: list[WayIn], api_key: str | None) -> str:
    lines = []
    if api_key:
        lines += ["On the laptop, once:", f"  export HUB3D_API_KEY={api_key}", ""]
    for way in ways:
        lines.append(f"== {way.name}: {way.url}")
        lines.append(f"   page (browser): {way.page_url(api_key)}")
        lines += [f"   note: {note}" for note in way.notes]
        lines += [f"   {cmd}" for cmd in way.commands()]
        lines.append("")
    return "\n".join(lines)
