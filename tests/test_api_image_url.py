"""image_url through the API: served from a local test HTTP server; SSRF targets refused."""

from __future__ import annotations

import http.server
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.conftest import TEST_MODELS, make_png
from tests.local_http import serving
from tests.servers import ServerProcess, wait_done
from tests.test_api import assert_error

PNG = make_png()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 — the stdlib's name
        if self.path == "/shirt.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("?to=")[2])
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("url") / "data", ["--models", TEST_MODELS])
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_image_url_from_allowed_local_host(start_server: Callable[..., ServerProcess],
                                           image_host: str) -> None:
    srv = start_server("--models", TEST_MODELS, env={"HUB3D_ALLOW_PRIVATE_URLS": "1"})
    r = requests.post(f"{srv.url}/generate", json={"image_url": f"{image_host}/shirt.png"})
    assert r.status_code == 202, r.text
    assert wait_done(srv.url, r.json()["job_id"])["status"] == "completed"
    assert_error(requests.post(f"{srv.url}/generate", json={"image_url": f"{image_host}/nope"}),
                 400, "invalid_input", "HTTP 404")
    # Private targets are allowed here, but a redirect to cloud metadata never is.
    to = "http://169.254.169.254/latest/meta-data"
    assert_error(requests.post(f"{srv.url}/generate", json={
        "image_url": f"{image_host}/redirect?to={to}"}), 400, "invalid_input", "link-local")


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:1/x.png", "loopback"),
    ("http://localhost:1/x.png", "loopback"),
    ("http://[::1]:1/x.png", "loopback"),
    ("http://0.0.0.0/x.png", "unspecified"),
    ("http://169.254.169.254/latest", "link-local"),
    ("http://10.1.2.3/x.png", "private"),
    ("http://172.16.0.1/x.png", "private"),
    ("http://192.168.1.1/x.png", "private"),
    ("http://[fd00::1]/x.png", "private"),
    ("file:///etc/passwd", "http or https"),
    ("ftp://example.com/x.png", "http or https"),
])
def test_ssrf_targets_refused(default_server: ServerProcess, url: str, words: str) -> None:
    r = requests.post(f"{default_server.url}/generate", json={"image_url": url})
    assert_error(r, 400, "invalid_input", words)


def test_no_hop_is_fetched_unchecked(default_server: ServerProcess, image_host: str) -> None:
    # With default settings the loopback test host is refused before any connection is made.
    r = requests.post(f"{default_server.url}/generate", json={
        "image_url": f"{image_host}/redirect?to=http://127.0.0.1:1/x.png"})
    assert_error(r, 400, "invalid_input", "loopback")
