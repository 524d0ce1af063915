from __future__ import annotations

import base64
import importlib.util
import io
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.servers import ServerProcess

REPO = Path(__file__).resolve().parents[1]
_OUR_ENV = ("PORT", "MAX_CONCURRENT", "MAX_QUEUE_SIZE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("HUB3D_") or name in _OUR_ENV:
            monkeypatch.delenv(name, raising=False)


def make_png(size: int = 256, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A coloured blob on white: an object the background chain can find."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((size * 0.2, size * 0.15, size * 0.8, size * 0.85), fill=color)
    draw.rectangle((size * 0.35, size * 0.3, size * 0.65, size * 0.5), fill=(30, 30, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture
def png_b64(png_bytes: bytes) -> str:
    return base64.b64encode(png_bytes).decode()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `hub3d serve` subprocesses; every one is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(*args: str, data_dir: Path | None = None, port: int | None = None,
              env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", list(args), env=env or {})
        if port:
            server.port = port
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


TEST_MODELS = "inflate,slow=tests.backends.testing:SlowBackend"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium (selenium) with a fresh profile; downloads land in tmp_path/downloads."""
    from tests.browser import INSTALL, chromium_driver, find_chromium

    if find_chromium() is None:
        pytest.skip(f"chromium or chromedriver is not installed: {INSTALL}")
    pytest.importorskip("selenium", reason=f"selenium is not installed: {INSTALL}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium_driver(tmp_path / "chromium-profile", download_dir=downloads)
    driver.download_dir = downloads
    try:
        yield driver
    finally:
        driver.quit()


# One token for every cluster of a test run: a process keeps the first Ray token it reads.
_RAY_TOKEN = secrets.token_hex(32)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Ray cluster on this machine: the head and node `n1`, one CPU each (each node's
    custom resource `hub3d_<name>` places work on it). Stopped after the module; its teardown
    fails the module's last test if any Ray process is left."""
    if importlib.util.find_spec("ray") is None:  # not imported here: see ray_driver
        pytest.skip("Ray is not installed: pip install -e '.[test]'")
    from tests.ray_cluster import head_and_n1

    with head_and_n1(tmp_path_factory.mktemp("ray"), token=_RAY_TOKEN) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ray_driver(ray_cluster: Any) -> Iterator[Any]:
    """This test process connected to `ray_cluster` as a driver (on the head's raylet), with
    the cluster's token in its environment (subprocesses inherit it)."""
    import logging

    saved = {name: os.environ.get(name) for name in ray_cluster.client_env}
    os.environ.update(ray_cluster.client_env)
    import ray  # reads its auth settings on import: the token must be in place by then

    ray.init(address=ray_cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
