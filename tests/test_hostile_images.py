"""Hostile and odd uploads through the HTTP API: each gets its documented status (docs/api.md)
and a message, the server stays healthy, and nothing is written outside the job's folder."""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.conftest import make_png
from tests.local_http import serving
from tests.servers import ServerProcess, wait_done

SLOW = "slow=tests.backends.testing:SlowBackend"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))


def bomb_png(side: int = 30000) -> bytes:
    """A real 30000×30000 PNG (1-bit, all black): ~110 kB that would decode to 900 MB."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    return _png(side, side, 1, 0, body)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("shirt.png", make_png())
    return buf.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return _encode(Image.new("RGB", (40, 20), (200, 40, 40)), "JPEG", exif=exif.tobytes())


_JPEG = _encode(Image.open(io.BytesIO(make_png(64))).convert("RGB"), "JPEG")
REFUSED: dict[str, tuple[Callable[[], bytes], int, str, str]] = {
    # name: (bytes, status, code, words in the message)
    "truncated PNG": (lambda: make_png()[:300], 400, "invalid_input", "truncated"),
    "truncated JPEG": (lambda: _JPEG[: len(_JPEG) // 2], 400, "invalid_input", "truncated"),
    "30000x30000 bomb": (bomb_png, 413, "image_too_large", "too many pixels"),
    "huge declared size": (lambda: _png(2**31 - 1, 2**31 - 1, 8, 2, zlib.compress(b"\0" * 64)),
                           413, "image_too_large", "too many pixels"),
    "SVG": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>",
            415, "unsupported_media_type", "png, jpeg or webp"),
    "HTML": (lambda: b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
             415, "unsupported_media_type", "png, jpeg or webp"),
    "ZIP": (_zip, 415, "unsupported_media_type", "png, jpeg or webp"),
    "1x1 pixel": (lambda: _encode(Image.new("RGB", (1, 1), "red"), "PNG"), 400,
                  "invalid_input", "at least 8"),
}
ACCEPTED: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    # name: (bytes, size of the input.png the job folder must hold)
    "CMYK JPEG": (lambda: _encode(Image.new("CMYK", (64, 48), (0, 200, 200, 0)), "JPEG"),
                  (64, 48)),
    "16-bit PNG": (lambda: _encode(Image.new("I;16", (64, 48), 40000), "PNG"), (64, 48)),
    "animated GIF": (_gif, (32, 32)),
    "transparent RGBA": (lambda: _encode(Image.new("RGBA", (64, 48), (0, 0, 0, 0)), "PNG"),
                         (64, 48)),
    "EXIF-rotated photo": (_exif_rotated, (20, 40)),  # stored upright: 40×20 turned 90°
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "tmp").mkdir()
    # TMPDIR of its own: a spill to temp files outside the job folder would show up there.
    srv = ServerProcess(root / "data", ["--models", SLOW, "--max-queue-size", "50"],
                        env={"TMPDIR": str(root / "tmp")})
    yield srv.start()
    srv.stop()


def _tree(root: Path) -> set[str]:
    """Every path under root, except SQLite's own files (their size changes, not their set) and
    the worker logs (logs/, written when a worker starts, never from an upload)."""
    paths = {str(p.relative_to(root)) for p in root.rglob("*")}
    return {p for p in paths if not p.startswith(("jobs.sqlite3", "logs"))}


def _healthy(server: ServerProcess) -> None:
    r = requests.get(f"{server.url}/health", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "healthy", r.text


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_with_status_and_message(server: ServerProcess, name: str) -> None:
    build, status, code, words = REFUSED[name]
    before, tmp_before = _tree(server.data_dir), _tree(server.data_dir.parent / "tmp")
    t0 = time.monotonic()
    r = requests.post(f"{server.url}/generate", timeout=30,
                      json={"image": base64.b64encode(build()).decode()})
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code and words in body["message"].lower(), body
    assert time.monotonic() - t0 < 10, "a refusal must not decode the pixels first"
    assert _tree(server.data_dir) == before
    assert _tree(server.data_dir.parent / "tmp") == tmp_before
    _healthy(server)


@pytest.mark.parametrize("how", ["json empty string", "json body empty", "multipart empty file"])
def test_empty_uploads(server: ServerProcess, how: str) -> None:
    before = _tree(server.data_dir)
    url = f"{server.url}/generate"
    if how == "json empty string":
        r = requests.post(url, json={"image": ""})
        words = "empty (0 bytes)"
    elif how == "json body empty":
        r = requests.post(url, data=b"", headers={"content-type": "application/json"})
        words = "must be a json object"
    else:
        r = requests.post(url, files={"image": ("empty.png", b"", "image/png")})
        words = "empty (0 bytes)"
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert words in r.json()["error"]["message"].lower(), r.text
    assert _tree(server.data_dir) == before
    _healthy(server)


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_odd_but_valid_images_are_normalised(server: ServerProcess, name: str) -> None:
    build, size = ACCEPTED[name]
    before = _tree(server.data_dir)
    r = requests.post(f"{server.url}/generate", json={"image": base64.b64encode(build()).decode()})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["message"] and accepted["status"] == "queued"
    job = wait_done(server.url, accepted["job_id"])
    assert job["status"] == "completed", job
    job_dir = server.data_dir / "jobs" / accepted["job_id"]
    with Image.open(job_dir / "input.png") as stored:
        assert stored.format == "PNG" and stored.size == size
        assert stored.mode in ("RGB", "RGBA")
    # New paths are all inside the new job's folder.
    added = _tree(server.data_dir) - before
    prefix = os.path.join("jobs", accepted["job_id"])
    assert all(p == prefix or p.startswith(prefix + os.sep) for p in added), added
    assert _tree(server.data_dir.parent / "tmp") == set()
    _healthy(server)


class _HostileHost(http.server.BaseHTTPRequestHandler):
    """image_url targets: too big (declared or streamed), trickling, or silent."""

    def do_GET(self) -> None:  # noqa: N802 — the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if self.path == "/declared-big.png":
            self.send_header("Content-Length", str(3_000_000))
            self.end_headers()
        elif self.path == "/streamed-big.png":  # no Content-Length: the cap must count bytes
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(300):
                    self.wfile.write(b"\0" * 10_000)
        elif self.path == "/trickle.png":
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(40):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.1)
        else:  # /silent.png: headers, then nothing
            self.end_headers()
            time.sleep(4)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_host() -> Iterator[str]:
    with serving(_HostileHost) as url:
        yield url


def _url_cap_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server("--models", SLOW, env={
        "HUB3D_ALLOW_PRIVATE_URLS": "1", "HUB3D_MAX_UPLOAD_MB": "1", "HUB3D_URL_TIMEOUT_S": "1"})


def _refused_in_time(srv: ServerProcess, url: str, status: int, code: str, words: str) -> None:
    t0 = time.monotonic()
    r = requests.post(f"{srv.url}/generate", json={"image_url": url}, timeout=30)
    assert r.status_code == status, (url, r.text)
    assert r.json()["error"]["code"] == code and words in r.json()["error"]["message"].lower()
    assert time.monotonic() - t0 < 3, f"{url}: the 1 s time cap did not hold"


def test_image_url_size_and_time_caps(start_server: Callable[..., ServerProcess],
                                      hostile_host: str) -> None:
    srv = _url_cap_server(start_server)
    before = _tree(srv.data_dir)
    _refused_in_time(srv, f"{hostile_host}/declared-big.png", 413, "image_too_large",
                     "limit is 1 mb")
    _refused_in_time(srv, f"{hostile_host}/streamed-big.png", 413, "image_too_large", "1 mb")
    _refused_in_time(srv, f"{hostile_host}/silent.png", 400, "invalid_input", "longer than 1 s")
    assert _tree(srv.data_dir) == before
    _healthy(srv)


def test_image_url_trickle_cut_at_the_time_cap(start_server: Callable[..., ServerProcess],
                                               hostile_host: str) -> None:
    srv = _url_cap_server(start_server)
    _refused_in_time(srv, f"{hostile_host}/trickle.png", 400, "invalid_input", "longer than 1 s")
