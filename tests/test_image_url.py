"""fetch_image_url against a real HTTP server on 127.0.0.1; refusals happen before connecting."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from hub3d.errors import ImageTooLarge, InvalidInput
from hub3d.imaging.fetch import MAX_REDIRECTS, fetch_image_url
from tests.conftest import make_png
from tests.local_http import serving

PNG = make_png()
CAP = 100_000


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if "Transfer_Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 — the stdlib's name
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/img.png":
            self._send(200, PNG, Content_Type="image/png")
        elif parts.path == "/host":  # what the server saw: the URL's host, not the pinned IP
            self._send(200, self.headers["Host"].encode())
        elif parts.path == "/redirect":
            hops = int(query.get("hops", "1"))
            nxt = query["to"] if hops <= 1 else f"/redirect?hops={hops - 1}&to={query['to']}"
            self._send(302, Location=nxt)
        elif parts.path == "/big":  # declares its size: refused from the header
            self._send(200, b"\0" * (CAP + 1))
        elif parts.path == "/big-chunked":  # no Content-Length: refused while streaming
            self._send(200, Transfer_Encoding="chunked")
            chunk = b"\0" * 16384
            for _ in range(CAP // len(chunk) + 2):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif parts.path == "/trickle":  # one byte at a time, each well within a read timeout
            self.send_response(200)
            self.send_header("Content-Length", "200")
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        elif parts.path == "/slow-headers":
            time.sleep(2.0)
            self._send(200, PNG)
        else:
            self._send(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def fetch(url: str, allow_private: bool = True, timeout_s: float = 5.0) -> bytes:
    return fetch_image_url(url, max_bytes=CAP, timeout_s=timeout_s, allow_private=allow_private)


def test_fetches_from_the_local_host_when_private_is_allowed(host: str) -> None:
    assert fetch(f"{host}/img.png") == PNG
    assert fetch(f"{host}/redirect?hops=3&to=/img.png") == PNG  # relative redirects followed
    port = urlsplit(host).port
    # By name: resolved once, connected to that address, Host header still the URL's.
    assert fetch(f"http://localhost:{port}/host") == f"localhost:{port}".encode()


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:1/x.png", "loopback"),
    ("http://localhost:1/x.png", "loopback"),  # a host name resolving to loopback
    ("http://[::1]:1/x.png", "loopback"),
    ("http://0.0.0.0:1/x.png", "unspecified"),
    ("http://[::]:1/x.png", "unspecified"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fe80::1]/x.png", "link-local"),
    ("http://10.1.2.3/x.png", "private"),
    ("http://172.16.0.1/x.png", "private"),
    ("http://172.31.255.254/x.png", "private"),
    ("http://192.168.1.1/x.png", "private"),
    ("http://[fc00::1]/x.png", "private"),
    ("http://[fd12:3456::1]/x.png", "private"),
    ("http://224.0.0.1/x.png", "multicast"),
    ("http://240.0.0.1/x.png", "reserved"),
    ("http://[::ffff:127.0.0.1]/x.png", "loopback"),  # IPv4-mapped IPv6
    ("file:///etc/passwd", "http or https"),
    ("ftp://example.com/x.png", "http or https"),
    ("data:image/png;base64,AAAA", "http or https"),
    ("http:///x.png", "no host"),
])
def test_refused_before_connecting(url: str, words: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=words):
        fetch(url, allow_private=False)
    assert time.monotonic() - started < 1.0  # no connection attempt, no timeout waited out


@pytest.mark.parametrize("url,words", [
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://224.0.0.1/x.png", "multicast"),
    ("http://0.0.0.0:1/x.png", "unspecified"),
])
def test_never_allowed_even_with_private_allowed(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        fetch(url, allow_private=True)


def test_every_redirect_hop_is_checked(host: str) -> None:
    # The local server is allowed; where it redirects to (cloud metadata) never is.
    with pytest.raises(InvalidInput, match="169.254.169.254.*link-local"):
        fetch(f"{host}/redirect?to=http://169.254.169.254/latest/meta-data")
    with pytest.raises(InvalidInput, match="link-local"):
        fetch(f"{host}/redirect?hops=4&to=http://169.254.169.254/")
    with pytest.raises(InvalidInput, match="http or https"):
        fetch(f"{host}/redirect?to=file:///etc/passwd")
    with pytest.raises(InvalidInput, match=f"more than {MAX_REDIRECTS} times"):
        fetch(f"{host}/redirect?hops={MAX_REDIRECTS + 1}&to=/img.png")


def test_status_size_and_time_caps(host: str) -> None:
    with pytest.raises(InvalidInput, match="HTTP 404"):
        fetch(f"{host}/missing.png")
    with pytest.raises(ImageTooLarge, match="MB"):
        fetch(f"{host}/big")
    with pytest.raises(ImageTooLarge, match="limit"):
        fetch(f"{host}/big-chunked")
    for path in ("/trickle", "/slow-headers"):
        started = time.monotonic()
        with pytest.raises(InvalidInput, match="longer than 1 s"):
            fetch(f"{host}{path}", timeout_s=1.0)
        assert time.monotonic() - started < 2.0, path
