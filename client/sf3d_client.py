#!/usr/bin/env python3
"""sf3d_client: the laptop side of hub3d. One file, Python >= 3.9, stdlib + requests.

Copy it anywhere and run it, or import it:

    python sf3d_client.py photo.png --server https://hub.example.org/user/me/proxy/9299 \\
        --hub-token "$JUPYTERHUB_TOKEN"            # writes photo.glb + photo.metadata.json
    python sf3d_client.py photos/ --server http://127.0.0.1:9299 --concurrency 2 --resume
    python sf3d_client.py --server http://127.0.0.1:9299 --health

    from sf3d_client import SF3DClient
    client = SF3DClient("http://127.0.0.1:9299", api_key="…")
    result = client.generate("photo.png", output_path="photo.glb")

Jobs are submitted and polled (a hub proxy cuts any request at 300 s), following the server's
event stream for progress when it can. `tqdm` draws the bars when installed; numpy and Pillow
are imported only when you pass an array or a PIL image.

Exceptions (each carries `.response`, the requests.Response, when there was one):

    ClientError                  base class
    ├── InputError               bad local input (missing file, unsupported array); also ValueError
    ├── ConnectionFailed         server unreachable: not running, tunnel down
    │   └── ServerAway           the hub answers, hub3d does not: your Jupyter server is stopped
    │                            (hub 424) or nothing listens on the port (proxy 5xx page)
    ├── WrongURL                 something answers, but not hub3d: check --server
    ├── AuthError                wrong X-API-Key (401), or the hub proxy wants a login (hub token)
    ├── RequestRejected          4xx: the server refused the request; `.code` is its error code
    │   └── QueueFull            429 for longer than `queue_wait_s`; `.retry_after` seconds
    ├── ServerError              5xx after the retries
    └── JobError                 the job itself did not give a result; `.job_id`, `.job`
        ├── JobFailed            it ended `failed` or `canceled`; `.code` is the server's
        │                        error_code, `.kind` what it asks of you (see FAILURE_KINDS)
        └── JobTimeout           `wait(timeout=…)` ran out first (the job keeps running)

Exit status of the command line: 0 every image done; 2 bad usage or no server; for failed
jobs, by what they ask of you: 3 send another image (or other parameters), 4 retry later,
5 a server-side bug to report, 6 canceled; 1 a mix of those or a failure without a code;
130 interrupted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = [
    "AuthError", "BatchItem", "ClientError", "ConnectionFailed", "InputError", "JobError",
    "JobFailed", "JobTimeout", "QueueFull", "RequestRejected", "Result", "SF3DClient",
    "ServerAway", "ServerError", "WrongURL", "exit_status", "format_health", "main",
]
__version__ = "0.1.0"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
TERMINAL = ("completed", "failed", "canceled")
RESTART_HINT = ("server not running: Run All in sf3d_api_server.ipynb on the hub, or"
                " `python -m hub3d restart` in a hub terminal")
PROXY_SHAPE = "/user/<you>/proxy/<port>/"
# A failed job's error_code → what it asks of you; the server's docs/api.md lists the codes.
FAILURE_KINDS = {
    "bad_input": "input", "no_object_detected": "input", "model_error": "input",
    "out_of_memory": "retry", "worker_crashed": "retry", "interrupted": "retry",
    "timeout": "retry", "storage_full": "retry", "model_unavailable": "retry",
    "internal": "bug", "canceled": "canceled",
}
KIND_ADVICE = {"input": "send another image, or other parameters",
               "retry": "retry later", "bug": "a server-side bug: report it with the job id",
               "canceled": "it was canceled"}
EXIT_STATUS = {"input": 3, "retry": 4, "bug": 5, "canceled": 6}
# A result's file ending by its media type, for a server that does not list its formats.
SUFFIXES = {"model/gltf-binary": ".glb", "application/octet-stream": ".ply",
            "model/vnd.usdz+zip": ".usdz", "application/zip": ".obj.zip"}
Progress = Callable[[dict[str, Any]], None]


class ClientError(Exception):
    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response


class InputError(ClientError, ValueError):
    pass


class ConnectionFailed(ClientError):
    pass


class ServerAway(ConnectionFailed):
    pass


class WrongURL(ClientError):
    pass


class AuthError(ClientError):
    pass


class RequestRejected(ClientError):
    def __init__(self, message: str, response: requests.Response | None = None,
                 code: str = "") -> None:
        super().__init__(message, response)
        self.code = code

    @property
    def kind(self) -> str:
        """An image or parameters the server refused: "input" (send another one)."""
        status = self.response.status_code if self.response is not None else 0
        return "input" if status in (400, 413, 415, 422) else ""


class QueueFull(RequestRejected):
    def __init__(self, message: str, response: requests.Response | None = None,
                 retry_after: float = 5.0) -> None:
        super().__init__(message, response, "queue_full")
        self.retry_after = retry_after


class ServerError(ClientError):
    pass


class JobError(ClientError):
    def __init__(self, message: str, job_id: str, job: dict[str, Any] | None = None,
                 response: requests.Response | None = None) -> None:
        super().__init__(message, response)
        self.job_id = job_id
        self.job = job or {}


class JobFailed(JobError):
    """`.code`: the server's error_code ("" from a server that sends none); `.kind`: input,
    retry, bug, canceled or "" (FAILURE_KINDS)."""

    def __init__(self, message: str, job_id: str, job: dict[str, Any] | None = None,
                 response: requests.Response | None = None, code: str = "") -> None:
        super().__init__(message, job_id, job, response)
        self.code = code
        self.kind = FAILURE_KINDS.get(code, "")


def _failure_text(reason: str, code: str, advice: str | None) -> str:
    """The server's reason, then its code and what to do about it."""
    if not code:
        return reason
    hint = advice or KIND_ADVICE.get(FAILURE_KINDS.get(code, ""), "")
    return f"{reason} [{code}: {hint}]" if hint else f"{reason} [{code}]"


class JobTimeout(JobError):
    pass


# ---------------------------------------------------------------- inputs

def _png_from_array(array: Any) -> bytes:
    """Encode an RGB(A)/grey numpy array as PNG with zlib alone, so arrays need no Pillow."""
    import numpy as np

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.size == 0:
        raise InputError(f"expected an image array of shape HxW, HxWx3 or HxWx4 (RGB order),"
                         f" got shape {a.shape}")
    if a.dtype.kind == "f":  # floats: 0..1 unless they are clearly 0..255
        a = a * 255.0 if float(np.nanmax(a)) <= 1.0 else a
        a = np.nan_to_num(a)
    a = np.clip(a, 0, 255).astype(np.uint8)
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else (2 if a.shape[2] == 3 else 6)  # grey, RGB, RGBA
    rows = np.zeros((h, 1 + a[0].size), np.uint8)  # filter byte 0 per row
    rows[:, 1:] = a.reshape(h, -1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _mime(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def encode_image(image: Any) -> tuple[str, bytes, str]:
    """(filename, bytes, mime) for a path, bytes, PIL image or numpy array."""
    module = type(image).__module__
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: no such image file; check the path")
        data = path.read_bytes()
        return path.name, data, _mime(data)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise InputError("the image bytes are empty")
        return "image.png", data, _mime(data)
    if module.startswith("numpy"):
        return "array.png", _png_from_array(image), "image/png"
    if module.startswith("PIL") and hasattr(image, "save"):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return "image.png", buf.getvalue(), "image/png"
    raise InputError(f"cannot send a {type(image).__name__}: pass a file path, bytes,"
                     " a PIL image or a numpy array")


def _form_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- results

@dataclass
class Result:
    """A finished job: the file (`path` when written, else `data`), metadata and timings."""

    job_id: str
    server_url: str
    output_format: str
    data: bytes | None = None
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the server's metadata.json
    timings: dict[str, float] = field(default_factory=dict)  # client-side seconds
    job: dict[str, Any] = field(default_factory=dict)  # the last GET /job/{id}
    input_name: str = ""

    def full_metadata(self) -> dict[str, Any]:
        client = {"server_url": self.server_url, "job_id": self.job_id,
                  "input": self.input_name, "timings": self.timings,
                  "client_version": __version__}
        return {**self.metadata, "client": client}


@dataclass
class BatchItem:
    input: str
    ok: bool
    seconds: float = 0.0
    output: Path | None = None
    error: str = ""
    skipped: bool = False
    job_id: str = ""
    kind: str = ""  # a failed job's FAILURE_KINDS value


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def metadata_path_for(output: Path) -> Path:
    """photo.glb → photo.metadata.json (photo.obj.zip too: the whole ending goes)."""
    name = output.name
    for suffix in sorted(SUFFIXES.values(), key=len, reverse=True):
        if name.endswith(suffix):
            return output.with_name(f"{name[:-len(suffix)]}.metadata.json")
    return output.with_name(f"{output.stem}.metadata.json")


def merge_run_metadata(run_dir: Path, result: Result) -> Path:
    """Pipeline layout: add this mesh's metadata under "mesh" in <run>/metadata.json."""
    path = Path(run_dir) / "metadata.json"
    existing: dict[str, Any] = {}
    if path.is_file():
        try:
            existing = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
        if not isinstance(existing, dict):
            raise InputError(f"{path} must hold a JSON object to merge into")
    mesh = {"file": result.path.name if result.path else None, **result.full_metadata()}
    write_json(path, {**existing, "mesh": mesh})
    return path


# ---------------------------------------------------------------- client

def _error_body(resp: requests.Response) -> tuple[str, str, dict[str, Any]]:
    """(code, message, error dict) from our {"error": {...}} shape, or from whatever came."""
    try:
        body = resp.json()
    except ValueError:
        return "", resp.text[:200].strip(), {}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("code", "")), str(err.get("message", "")), err
    detail = body.get("detail") if isinstance(body, dict) else None
    return "", str(detail or body)[:300], {}


class SF3DClient:
    """Talks to a hub3d server directly, through the JupyterHub proxy, ngrok or an SSH tunnel.

    `session`: a requests.Session to use as is (its adapters, proxies, certificates); without
    one the client makes its own, with urllib3 retries for transient 502/503/504 and resets
    on GET/DELETE. A POST carries an Idempotency-Key, the same on each of its retries: one that
    reached the server before the connection dropped gets the first job back, not a second.
    """

    def __init__(self, base_url: str, api_key: str | None = None,
                 hub_token: str | None = None, timeout: float = 60.0, retries: int = 3,
                 *, session: requests.Session | None = None, reconnect_s: float = 300.0,
                 queue_wait_s: float = 600.0, use_events: bool = True,
                 poll_interval: tuple[float, float] = (0.25, 2.0)) -> None:
        if not base_url or not urlsplit(base_url).scheme.startswith("http"):
            raise InputError(f"server URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.api_key, self.hub_token = api_key, hub_token
        self.timeout, self.reconnect_s, self.queue_wait_s = timeout, reconnect_s, queue_wait_s
        self.use_events, self.poll_interval = use_events, poll_interval
        self._active: set[str] = set()  # jobs this client waits on, for cancel_active()
        self._submitting = 0  # POSTs in flight: their jobs may exist before their ids are known
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._formats: dict[str, dict[str, dict[str, Any]] | None] = {}  # model → name → info
        self._waiting = False
        self.notify: Callable[[str], None] | None = None  # told when it waits and resumes
        self.headers = {"ngrok-skip-browser-warning": "1",
                        "User-Agent": f"sf3d-client/{__version__}"}
        if api_key:
            self.headers["X-API-Key"] = api_key
        if hub_token:
            self.headers["Authorization"] = f"token {hub_token}"
        if session is None:
            session = requests.Session()
            # refused connections are left to _request's reconnect window, so that
            # test_connection() can fail at once while a job's polling rides out a restart
            retry = Retry(total=retries, connect=0, read=retries, status=retries,
                          backoff_factor=0.5, status_forcelist=(502, 503, 504),
                          allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),
                          respect_retry_after_header=True, raise_on_status=False)
            adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    # -- plumbing
    @property
    def hub_url(self) -> str:
        parts = urlsplit(self.base_url)
        prefix = parts.path.split("/user/")[0] if "/user/" in parts.path else ""
        return f"{parts.scheme}://{parts.netloc}{prefix}"

    def _hub_login_error(self, resp: requests.Response) -> AuthError:
        sent = "" if self.hub_token else " (no hub token was sent: pass --hub-token or set" \
                                          " JUPYTERHUB_TOKEN)"
        return AuthError(f"the hub did not accept your token: make one at {self.hub_url}/hub/token"
                         f"{sent}", resp)

    def _wrong_url(self, resp: requests.Response, what: str) -> WrongURL:
        shape = f": a hub URL ends in {PROXY_SHAPE}" if "/user/" in self.base_url or \
            "/hub" in urlsplit(resp.url).path else ""
        return WrongURL(f"no hub3d server at {self.base_url} ({what}){shape}; use the URL the"
                        " notebook printed", resp)

    def _server_stopped(self, resp: requests.Response) -> ServerAway:
        return ServerAway(f"your Jupyter server on the hub is not running: start it at"
                          f" {self.hub_url}/hub/home, then Run All in sf3d_api_server.ipynb (or"
                          " `python -m hub3d restart` in a hub terminal)", resp)

    def _redirected(self, resp: requests.Response) -> requests.Response:
        """JupyterHub's 3xx: a login (bad token), or the hub itself taking a /user/ URL
        because no server of that user is running (it then says 424), or a wrong address."""
        location = resp.headers.get("location", "")
        path = urlsplit(location).path
        if "/oauth2/authorize" in path or path.rstrip("/").endswith("/hub/login"):
            raise self._hub_login_error(resp)
        if "/hub/user/" in path:
            follow = self.session.get(requests.compat.urljoin(resp.url, location),
                                      headers=self.headers, timeout=self.timeout,
                                      allow_redirects=False)
            if follow.status_code in (424, 503):  # stopped, or still starting
                raise self._server_stopped(follow)
            raise self._wrong_url(follow, f"the hub answered {follow.status_code} for"
                                          f" {urlsplit(follow.url).path}")
        raise self._wrong_url(resp, f"redirected to {path or location}")

    def _check(self, resp: requests.Response) -> requests.Response:
        status, ctype = resp.status_code, resp.headers.get("content-type", "")
        where = f"{resp.request.method} {urlsplit(resp.url).path}" if resp.request else resp.url
        if 300 <= status < 400:
            return self._redirected(resp)
        if "json" not in ctype and "text/event-stream" not in ctype and (
                status >= 500 or "text/html" in ctype):
            # an HTML page: never hub3d, which answers JSON, files or event streams
            if status == 424:
                raise self._server_stopped(resp)
            if status >= 500:  # the proxy: nothing listens on the port (kernel restarted?)
                raise ServerAway(f"nothing answers at {self.base_url} (the proxy said {status}"
                                 f" for {where}): {RESTART_HINT}; or check the port in"
                                 " --server", resp)
            if status in (401, 403):
                raise self._hub_login_error(resp)
            if status < 400 and "ngrok" in resp.text[:2000].lower():
                raise AuthError("ngrok showed its browser warning page instead of the API:"
                                " is this the tunnel URL the notebook printed?", resp)
            raise self._wrong_url(resp, f"{status} page for {where}")
        if status < 400:
            return resp
        code, message, err = _error_body(resp)
        if status in (401, 403) and not code and "json" not in ctype:
            raise self._hub_login_error(resp)
        if status == 401:
            raise AuthError(f"the server refused the API key ({message}): pass --api-key or set"
                            " HUB3D_API_KEY to the key the server was started with", resp)
        if status == 429:
            try:
                retry_after = float(resp.headers.get("Retry-After", "5"))
            except ValueError:
                retry_after = 5.0
            raise QueueFull(f"the server queue is full: {message}", resp, retry_after)
        if status == 404 and not code:  # a route hub3d does not have: some other server
            raise self._wrong_url(resp, f"404 for {where}")
        if status >= 500:
            raise ServerError(f"server error {status} on {where}: {message}", resp)
        raise RequestRejected(f"{message or 'request refused'} ({status} on {where})", resp,
                              code or str(err.get("code", "")))

    def _request(self, method: str, path: str, *, reconnect_s: float | None = None,
                 **kwargs: Any) -> requests.Response:
        """One call. While the server is away (refused, proxy error page, hub 424: a kernel
        restart, a stopped server) it is retried for `reconnect_s`; a POST keeps its
        Idempotency-Key across the retries, so nothing is submitted twice."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout)
        window = self.reconnect_s if reconnect_s is None else reconnect_s
        deadline, delay = time.monotonic() + window, 0.25
        headers = {**self.headers, **kwargs.pop("headers", {})}
        while True:
            try:
                resp = self.session.request(method, url, headers=headers,
                                            allow_redirects=False, **kwargs)
                checked = self._check(resp)
                if self._waiting:
                    self._waiting = False
                    self._say("the server is back: resuming")
                return checked
            except requests.ConnectionError as exc:
                away: ClientError = ConnectionFailed(
                    f"cannot reach {self.base_url}: {RESTART_HINT}; or check the URL and"
                    f" tunnel ({type(exc).__name__})")
                cause: BaseException = exc
            except ServerAway as exc:
                away, cause = exc, exc
            except requests.Timeout as exc:
                raise ConnectionFailed(f"no answer from {url} within {kwargs['timeout']} s:"
                                       " the server or tunnel is stuck") from exc
            if time.monotonic() + delay > deadline:
                if window > 0:
                    away.message = f"{away.message} (waited {window:.0f} s)"
                    away.args = (away.message,)
                raise away from (None if cause is away else cause)
            self._on_wait(away)
            time.sleep(delay)
            delay = min(delay * 2, 4.0)

    def _on_wait(self, away: ClientError) -> None:
        """Say once per outage that the client is waiting, and why."""
        if not self._waiting:
            self._waiting = True
            self._say(f"waiting for the server (up to {self.reconnect_s:.0f} s): {away.message}")

    def _say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)

    # -- queries
    def test_connection(self) -> dict[str, Any]:
        """GET /health once (no waiting for a restart); raises a clear error otherwise."""
        health: dict[str, Any] = self._request("GET", "/health", reconnect_s=0).json()
        if "version" not in health:  # the server hides details from a missing or wrong key
            raise AuthError("the server refused the API key: pass --api-key or set"
                            " HUB3D_API_KEY to the key the server was started with")
        return health

    def health(self) -> dict[str, Any]:
        """GET /health once; without the right API key only `status` comes back."""
        return dict(self._request("GET", "/health", reconnect_s=0).json())

    def models(self) -> list[dict[str, Any]]:
        body = self._request("GET", "/models").json()
        return list(body.get("models", body) if isinstance(body, dict) else body)

    def formats(self, model: str | None = None) -> dict[str, dict[str, Any]] | None:
        """The output formats the server offers for `model` (default: its default model),
        name → {suffix, media_type, description, native}; None from a server that does not
        list them. Asked once per model."""
        key = model or ""
        if key not in self._formats:
            found = [m for m in self.models() if (m.get("name") == model if model
                                                  else m.get("default"))]
            listed = found[0].get("formats") if found else None
            self._formats[key] = ({f["name"]: f for f in listed if isinstance(f, dict)}
                                  if isinstance(listed, list) and listed else None)
        return self._formats[key]

    def suffix_for(self, output_format: str, model: str | None = None) -> str:
        """The file ending of a result in `output_format` (".glb", ".obj.zip" …), as the server
        lists it; InputError when the model does not offer that format."""
        listed = self.formats(model)
        if listed is None:
            return f".{output_format}"
        if output_format not in listed:
            raise InputError(f"model {model or 'the default model'} offers "
                             f"{', '.join(listed)}, not {output_format!r} (--format)")
        return str(listed[output_format]["suffix"])

    def status(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/job/{job_id}").json())

    def metadata(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/job/{job_id}/metadata").json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/job/{job_id}").json())

    # -- async use
    def _form(self, image: Any, model: str | None, mask: Any,
              params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        files: dict[str, Any] = {"image": encode_image(image)}
        if mask is not None:
            files["mask"] = encode_image(mask)
        form = {k: _form_value(v) for k, v in params.items() if v is not None}
        if model:
            form["model"] = model
        return files, form

    def _post_job(self, path: str, image: Any, model: str | None, mask: Any,
                  params: dict[str, Any], **kwargs: Any) -> tuple[requests.Response, int]:
        """POST, waiting out 429s (Retry-After) for up to `queue_wait_s`; (response, waits)."""
        files, form = self._form(image, model, mask, params)
        deadline, waits = time.monotonic() + self.queue_wait_s, 0
        # one key for this submission and all of its retries (reconnects, queue-full waits)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        while True:
            try:
                return self._request("POST", path, files=files, data=form, headers=key,
                                     **kwargs), waits
            except QueueFull as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                waits += 1
                time.sleep(max(0.1, min(exc.retry_after, left)))

    def submit(self, image: Any, model: str | None = None, mask: Any = None,
               **params: Any) -> str:
        """Queue a job; returns its id. Params: seed, output_format, with_texture, …"""
        resp, _ = self._post_job("/generate", image, model, mask, params)
        return str(resp.json()["job_id"])

    def _events(self, job_id: str, deadline: float | None,
                progress: Progress | None) -> dict[str, Any] | None:
        """Follow GET /job/{id}/events; the last job view, or None when the stream broke."""
        last: dict[str, Any] | None = None
        try:
            # the server sends a keepalive every 15 s: silence past 20 s is a buffering proxy
            # jupyter-server-proxy streams only when Accept is exactly text/event-stream;
            # anything else is buffered until the job ends
            resp = self._request("GET", f"/job/{job_id}/events", stream=True, reconnect_s=0,
                                 timeout=(self.timeout, 20.0),
                                 headers={"Accept": "text/event-stream"})
            with resp:
                for line in resp.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        last = json.loads(line[5:].strip())
                        if progress:
                            progress(last)
                        if last.get("status") in TERMINAL:
                            return last
                    if deadline is not None and time.monotonic() > deadline:
                        return last
        except requests.ReadTimeout:
            if last is None:
                self.use_events = False  # this route holds streams back: poll from now on
        except (requests.RequestException, ConnectionFailed, ServerError, ValueError):
            pass  # a proxy that cuts streams, a server restarting: polling takes over
        return None if last is None or last.get("status") not in TERMINAL else last

    def wait(self, job_id: str, timeout: float | None = None,
             progress: Progress | None = None) -> dict[str, Any]:
        """Until the job ends; returns its view, raises JobFailed/JobTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self._events(job_id, deadline, progress) if self.use_events else None
        interval, seen = self.poll_interval[0], None
        while job is None or job.get("status") not in TERMINAL:
            job = self.status(job_id)
            state = (job.get("status"), job.get("stage"))
            if progress and state != seen:
                progress(job)
            seen = state
            if job.get("status") in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise JobTimeout(f"job {job_id} is still {job.get('status')} after {timeout} s;"
                                 " it keeps running: wait() again or cancel() it", job_id, job)
            time.sleep(interval)
            interval = min(interval * 1.5, self.poll_interval[1])
        if job.get("status") != "completed":
            reason = job.get("error") or job.get("message") or "no reason given"
            code = str(job.get("error_code") or "")
            raise JobFailed(f"job {job_id} {job.get('status')}: "
                            f"{_failure_text(reason, code, job.get('advice'))}", job_id, job,
                            code=code)
        return job

    def download(self, job_id: str, path: os.PathLike | None = None) -> Any:
        """The result: bytes, or written to `path` (atomically) and the Path returned."""
        resp = self._request("GET", f"/job/{job_id}/download", timeout=(self.timeout, 300.0))
        if path is None:
            return resp.content
        target = Path(path)
        _atomic_write(target, resp.content)
        return target

    # -- one call
    def generate(self, image: Any, model: str | None = None, output_format: str = "glb",
                 *, output_path: os.PathLike | None = None, write_metadata: bool = True,
                 sync: bool = False, mask: Any = None, timeout: float | None = None,
                 progress: Progress | None = None, **params: Any) -> Result:
        """Image to mesh. With `output_path` the file (and <stem>.metadata.json beside it,
        unless write_metadata=False) is written there; otherwise Result.data holds the bytes.
        `model=None` is the server's default model."""
        params["output_format"] = output_format
        t0 = time.monotonic()
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else type(image).__name__
        if sync:
            (job_id, data), waits = self._run_sync(image, model, mask, params), 0
            with self._lock:
                self._active.add(job_id)
        else:
            (job_id, waits), data = self._submit_tracked(image, model, mask, params), None
        timings: dict[str, float] = {"submit_s": time.monotonic() - t0}
        try:
            job = self.wait(job_id, timeout, progress)
        except KeyboardInterrupt:
            self._cancel_quietly(job_id)
            raise
        finally:
            with self._lock:
                self._active.discard(job_id)
        t1 = time.monotonic()
        timings["wait_s"] = t1 - t0 - timings["submit_s"]
        target = Path(output_path) if output_path is not None else None
        if data is None:
            data = self.download(job_id)
        if target is not None:
            _atomic_write(target, data)
        timings["download_s"] = time.monotonic() - t1
        try:
            server_meta = self.metadata(job_id)
        except ClientError:
            server_meta = {}  # an older server without /metadata: the file still counts
        if job.get("processing_time") is not None:
            timings["server_processing_s"] = float(job["processing_time"])
        timings["total_s"] = time.monotonic() - t0
        result = Result(job_id=job_id, server_url=self.base_url, output_format=output_format,
                        data=None if target else data, path=target, metadata=server_meta,
                        timings={k: round(v, 3) for k, v in timings.items()}, job=job,
                        input_name=name)
        result.timings["queue_full_waits"] = waits
        if target is not None and write_metadata:
            write_json(metadata_path_for(target), result.full_metadata())
        return result

    def _submit_tracked(self, image: Any, model: str | None, mask: Any,
                        params: dict[str, Any]) -> tuple[str, int]:
        """POST /generate; (job id, queue-full waits). The id joins the active jobs as soon as
        it is known, and cancel_active() waits for a submission still on its way."""
        with self._lock:
            self._submitting += 1
        job_id = ""
        try:
            resp, waits = self._post_job("/generate", image, model, mask, params)
            job_id = str(resp.json()["job_id"])
            return job_id, waits
        finally:
            with self._settled:
                if job_id:
                    self._active.add(job_id)
                self._submitting -= 1
                self._settled.notify_all()

    def _run_sync(self, image: Any, model: str | None, mask: Any,
                  params: dict[str, Any]) -> tuple[str, bytes | None]:
        """POST /generate/sync; on the server's 504 the job id comes back to keep polling."""
        try:
            resp, _ = self._post_job("/generate/sync", image, model, mask, params,
                                     timeout=(self.timeout, 900.0))
        except RequestRejected as exc:
            if exc.code.startswith("job_") and exc.response is not None:
                job_id = exc.response.headers.get("X-Job-Id", "")
                body = _error_body(exc.response)[2]
                code = str(body.get("error_code") or "")
                raise JobFailed(f"job {job_id} "
                                f"{_failure_text(exc.message, code, body.get('advice'))}",
                                job_id, None, exc.response, code) from None
            raise
        except ServerError as exc:
            job_id = exc.response.headers.get("X-Job-Id", "") if exc.response is not None else ""
            if exc.response is None or exc.response.status_code != 504 or not job_id:
                raise
            return job_id, None
        if not resp.headers.get("X-Job-Id"):
            raise ServerError("the sync answer carries no X-Job-Id: is this a hub3d server?", resp)
        return resp.headers["X-Job-Id"], resp.content

    def cancel_active(self, settle_s: float = 5.0) -> list[str]:
        """Cancel every job this client is waiting on (Ctrl-C in a batch); their ids. A
        submission still on its way is waited for (up to `settle_s`): the server may have
        queued its job already, and that job is canceled too."""
        with self._settled:
            self._settled.wait_for(lambda: not self._submitting, timeout=settle_s)
            ids = sorted(self._active)
        for job_id in ids:
            self._cancel_quietly(job_id)
        return ids

    def _cancel_quietly(self, job_id: str) -> None:
        try:
            self._request("DELETE", f"/job/{job_id}", reconnect_s=0, timeout=5)
        except ClientError:
            pass

    # -- the seed's names
    def generate_mesh(self, image_array: Any, texture_resolution: int | None = None,
                      remesh_option: str | None = None, vertex_count: int | None = None,
                      output_path: os.PathLike | None = None, **kwargs: Any) -> Path:
        """An RGB(A) numpy array (or any accepted image) to a GLB; returns its path
        (default: sf3d_<job id>.glb in the current folder). Only the parameters given are
        sent (the server's defaults apply otherwise): a model that does not take one, such
        as sam3d and texture_resolution, answers 422."""
        given = {"texture_resolution": texture_resolution, "remesh_option": remesh_option,
                 "vertex_count": vertex_count}
        kwargs.update({k: v for k, v in given.items() if v is not None})
        result = self.generate(image_array, **kwargs)
        suffix = self.suffix_for(result.output_format, kwargs.get("model"))
        target = Path(output_path) if output_path else Path(f"sf3d_{result.job_id}{suffix}")
        _atomic_write(target, result.data or b"")
        result.path = target
        write_json(metadata_path_for(target), result.full_metadata())
        return target

    def generate_from_file(self, path: os.PathLike, output_path: os.PathLike | None = None,
                           **kwargs: Any) -> Path:
        """An image file to a mesh beside it (photo.png -> photo.glb); returns its path."""
        suffix = self.suffix_for(kwargs.get("output_format", "glb"), kwargs.get("model"))
        source = Path(path)
        target = Path(output_path) if output_path else source.parent / (source.stem + suffix)
        result = self.generate(path, output_path=target, **kwargs)
        assert result.path is not None
        return result.path

    # -- many
    def generate_many(self, paths: Iterable[os.PathLike], out_dir: os.PathLike = ".",
                      concurrency: int = 2, resume: bool = False, output_format: str = "glb",
                      on_done: Callable[[BatchItem], None] | None = None,
                      progress: Callable[[str, dict[str, Any]], None] | None = None,
                      **kwargs: Any) -> list[BatchItem]:
        """Each image to <out_dir>/<stem>.<format>, `concurrency` at a time; failures are
        reported in the items, never raised. `resume` skips inputs whose output exists."""
        inputs = [Path(p) for p in paths]
        suffix = self.suffix_for(output_format, kwargs.get("model"))
        targets = _unique_targets(inputs, Path(out_dir), suffix)

        def one(pair: tuple[Path, Path]) -> BatchItem:
            src, target = pair
            if resume and target.is_file() and target.stat().st_size > 0:
                item = BatchItem(str(src), True, 0.0, target, skipped=True)
            else:
                t0 = time.monotonic()
                cb = (lambda job: progress(src.name, job)) if progress else None
                try:
                    res = self.generate(src, output_format=output_format, output_path=target,
                                        progress=cb, **kwargs)
                    item = BatchItem(str(src), True, time.monotonic() - t0, target,
                                     job_id=res.job_id)
                except (ClientError, OSError) as exc:
                    item = BatchItem(str(src), False, time.monotonic() - t0,
                                     error=str(exc), job_id=getattr(exc, "job_id", ""),
                                     kind=getattr(exc, "kind", ""))
            if on_done:
                on_done(item)
            return item

        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        try:
            futures = [pool.submit(one, pair) for pair in zip(inputs, targets)]  # noqa: B905
            # Wake often: a Ctrl-C the kernel hands to a request thread is only acted on when
            # the main thread runs again (a plain wait would sleep until every job ended).
            while wait(futures, timeout=0.2).not_done:
                pass
            return [f.result() for f in futures]
        finally:  # on Ctrl-C, return at once instead of waiting for the jobs in flight
            pool.shutdown(wait=False, cancel_futures=True)


def _unique_targets(inputs: Sequence[Path], out_dir: Path, suffix: str) -> list[Path]:
    targets = [out_dir / f"{p.stem}{suffix}" for p in inputs]
    seen: dict[Path, Path] = {}
    for src, target in zip(inputs, targets):  # noqa: B905 (3.9)
        if target in seen:
            raise InputError(f"{seen[target]} and {src} would both write {target}: rename one"
                             " or run them into different --out folders")
        seen[target] = src
    return targets


# ---------------------------------------------------------------- command line

def format_health(health: dict[str, Any]) -> str:
    """The /health answer as a small readable table."""
    rows = [("status", str(health.get("status", "?")))]
    if "version" not in health:
        rows.append(("details", "hidden: send the server's API key (--api-key)"))
    for key in ("version", "default_model"):
        if health.get(key) is not None:
            rows.append((key.replace("_", " "), str(health[key])))
    if "cuda" in health:
        rows.append(("cuda", "yes" if health["cuda"] else "no"))
    for gpu in health.get("gpus") or ([health["gpu"]] if health.get("gpu") else []):
        rows.append(("gpu", f"{gpu.get('name')}  {gpu.get('vram_free_gb')} of"
                            f" {gpu.get('vram_gb')} GB free"))
    q = health.get("queue")
    if isinstance(q, dict):
        rows.append(("queue", f"{q.get('queued')} queued, {q.get('processing')} processing"
                              f" (limit {q.get('max_queue_size')},"
                              f" {q.get('max_concurrent')} at a time)"))
    lines = [f"{k:<14}{v}" for k, v in rows]
    models = health.get("models") or {}
    if models:
        lines.append("")
        lines.append(f"{'model':<14}{'state':<12}{'device':<10}error")
        for name, m in models.items():
            lines.append(f"{name:<14}{str(m.get('state')):<12}{str(m.get('device') or '-'):<10}"
                         f"{m.get('error') or ''}")
    return "\n".join(lines)


def _expand_inputs(args: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            images = sorted(f for f in p.iterdir()
                            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise InputError(f"{p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found += images
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return found


class _Reporter:
    """A tqdm bar over the batch when tqdm is installed, plain lines otherwise."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, 0, quiet
        self.lock = threading.Lock()
        self.last: dict[str, tuple[Any, Any]] = {}
        self.bar: Any = None
        if not quiet:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="image", file=sys.stderr)
            except ImportError:
                pass

    def stage(self, name: str, job: dict[str, Any]) -> None:
        state = (job.get("status"), job.get("stage"))
        with self.lock:
            if self.quiet or self.last.get(name) == state:
                return
            self.last[name] = state
            text = f"{name}: {state[0]}" + (f" ({state[1]})" if state[1] else "")
            if self.bar is not None:
                self.bar.set_postfix_str(text)
            else:
                print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def item(self, item: BatchItem) -> None:
        with self.lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
            elif not self.quiet:
                word = "skipped" if item.skipped else ("ok" if item.ok else "failed")
                print(f"[{self.done}/{self.total}] {Path(item.input).name}: {word}",
                      file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(items: Sequence[BatchItem]) -> str:
    width = max([len(Path(i.input).name) for i in items] + [5]) + 2
    lines = [f"{'input':<{width}}{'result':<9}{'seconds':>8}  output / error"]
    for i in items:
        word = "skipped" if i.skipped else ("ok" if i.ok else "failed")
        lines.append(f"{Path(i.input).name:<{width}}{word:<9}{i.seconds:>8.1f}  "
                     f"{i.output if i.ok else i.error}")
    ok = sum(i.ok and not i.skipped for i in items)
    skipped = sum(i.skipped for i in items)
    lines.append(f"{len(items)} inputs: {ok} ok, {len(items) - ok - skipped} failed,"
                 f" {skipped} skipped")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="sf3d_client.py", description="Turn images into 3D meshes on a hub3d server.",
        epilog="Settings also come from HUB3D_SERVER, HUB3D_API_KEY and JUPYTERHUB_TOKEN.")
    p.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR", help="images or folders of them")
    p.add_argument("--server", default=env("HUB3D_SERVER"), help="server URL (HUB3D_SERVER)")
    p.add_argument("--api-key", default=env("HUB3D_API_KEY"), help="hub3d key (HUB3D_API_KEY)")
    p.add_argument("--hub-token", default=env("JUPYTERHUB_TOKEN"),
                   help="JupyterHub API token for the hub proxy (JUPYTERHUB_TOKEN)")
    p.add_argument("--model", help="sf3d | sam3d | inflate (default: the server's default)")
    p.add_argument("--format", dest="output_format", default="glb",
                   help="glb (default), usdz, obj, ply: any format the server lists for the "
                        "model (GET /models); files are named by it (.usdz, .obj.zip …)")
    p.add_argument("--texture-resolution", type=int)
    p.add_argument("--remesh", dest="remesh_option", choices=("none", "triangle", "quad"))
    p.add_argument("--vertex-count", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--foreground-ratio", type=float)
    p.add_argument("--no-texture", action="store_true", help="vertex colours, no texture")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other model parameter (repeatable; VALUE read as JSON if it can)")
    p.add_argument("--out", default=".", help="output folder (default: here)")
    p.add_argument("--run-dir", help="pipeline layout for one image: <run>/mesh.glb and"
                                     " metadata.json merged into an existing one")
    p.add_argument("--concurrency", type=int, default=2, help="jobs in flight (default 2)")
    p.add_argument("--resume", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--sync", action="store_true", help="one request per image (direct access)")
    p.add_argument("--timeout", type=float, help="give up on a job after this many seconds")
    p.add_argument("--reconnect", type=float, default=300.0, metavar="SECONDS",
                   help="wait this long for a server that went away (kernel restart + Run All,"
                        " a stopped server) before failing its jobs (default 300)")
    p.add_argument("--health", action="store_true", help="print the server's health and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--version", action="version", version=f"sf3d_client {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    if not a.server:
        parser.error("--server URL is required (or set HUB3D_SERVER)")
    if not a.health and not a.inputs:
        parser.error("give at least one image or folder (or --health)")
    try:
        client = SF3DClient(a.server, api_key=a.api_key, hub_token=a.hub_token,
                            reconnect_s=a.reconnect)
        if not a.quiet:
            client.notify = lambda line: print(line, file=sys.stderr, flush=True)
        health = client.health() if a.health else client.test_connection()
        if a.health:
            print(format_health(health))
            return 0 if health.get("status") == "healthy" else 1
        inputs = _expand_inputs(a.inputs)
        if a.run_dir and len(inputs) != 1:
            raise InputError("--run-dir takes exactly one image")
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = {k: getattr(a, k) for k in ("texture_resolution", "remesh_option", "vertex_count",
                                         "seed", "foreground_ratio") if getattr(a, k) is not None}
    if a.no_texture:
        params["with_texture"] = False
    for item in a.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--param {item!r}: write it as KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    if a.run_dir:
        return _run_dir(client, inputs[0], Path(a.run_dir), a, params)
    reporter = _Reporter(len(inputs), a.quiet)
    try:
        items = client.generate_many(inputs, a.out, a.concurrency, a.resume, a.output_format,
                                     on_done=reporter.item, progress=reporter.stage,
                                     model=a.model, sync=a.sync, timeout=a.timeout, **params)
    except ClientError as exc:  # before any job: a format the model does not offer, …
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        reporter.close()
        print(f"interrupted: canceled {len(client.cancel_active())} running job(s)",
              file=sys.stderr)
        os._exit(130)  # the batch threads are blocked in requests; don't wait for them
    finally:
        reporter.close()
    print(_summary(items))
    return exit_status(items)


def exit_status(items: Sequence[BatchItem]) -> int:
    """0 all done; else what the failures ask of you, when they all ask the same."""
    kinds = {i.kind for i in items if not i.ok}
    if not kinds:
        return 0
    return EXIT_STATUS.get(kinds.pop(), 1) if len(kinds) == 1 else 1


def _run_dir(client: SF3DClient, src: Path, run: Path, a: argparse.Namespace,
             params: dict[str, Any]) -> int:
    try:
        target = run / f"mesh{client.suffix_for(a.output_format, a.model)}"
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.resume and target.is_file():
        print(f"{target} exists: skipped")
        return 0
    reporter = _Reporter(1, a.quiet)
    try:
        result = client.generate(src, a.model, a.output_format, output_path=target,
                                 write_metadata=False, sync=a.sync, timeout=a.timeout,
                                 progress=lambda job: reporter.stage(src.name, job), **params)
    except ClientError as exc:
        print(f"error: {src.name}: {exc}", file=sys.stderr)
        return EXIT_STATUS.get(getattr(exc, "kind", ""), 1)
    finally:
        reporter.close()
    print(f"{target}  ({result.timings.get('total_s', 0):.1f} s)  metadata:"
          f" {merge_run_metadata(run, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
