"""The client library against real hub3d servers on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import trimesh
from PIL import Image

from tests.client_helpers import hub_login_standin, load_client, models, sample_png
from tests.conftest import make_png
from tests.servers import ServerProcess, free_port

sf3d = load_client()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("client")
    proc = ServerProcess(tmp / "data", ["--models", models(with_slow=True)]).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Any:
    return sf3d.SF3DClient(server.url)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "tshirt.png"
    path.write_bytes(sample_png())
    return path


def assert_glb(path_or_bytes: Path | bytes) -> None:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    assert data[:4] == b"glTF"
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    assert len(scene.geometry) >= 1


def test_generate_from_file_writes_mesh_and_metadata(client: Any, image: Path,
                                                     server: ServerProcess) -> None:
    out = client.generate_from_file(image)
    assert out == image.with_suffix(".glb")
    assert_glb(out)
    meta = json.loads((image.parent / "tshirt.metadata.json").read_text())
    assert meta["model"] == "inflate" and meta["params"]["output_format"] == "glb"
    assert meta["client"]["server_url"] == server.url
    assert meta["client"]["input"] == "tshirt.png"
    assert meta["client"]["timings"]["total_s"] > 0
    assert meta["client"]["job_id"] == meta["job_id"]


def test_generate_mesh_from_numpy_array_sends_the_same_pixels(
        client: Any, tmp_path: Path, server: ServerProcess) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(make_png(128))).convert("RGB"))
    out = client.generate_mesh(rgb, texture_resolution=256, output_path=tmp_path / "arr.glb")
    assert_glb(out)
    meta = json.loads((tmp_path / "arr.metadata.json").read_text())
    assert meta["params"]["texture_resolution"] == 256
    # the server decoded our zlib-only PNG to exactly these pixels
    sent = np.asarray(Image.open(server.data_dir / "jobs" / meta["job_id"] / "input.png"))
    assert np.array_equal(sent[..., :3], rgb)


def test_generate_mesh_sends_only_the_parameters_given(client: Any, tmp_path: Path) -> None:
    # `slow` takes no texture parameters (like sam3d): the seed's defaults must not be sent
    rgb = np.asarray(Image.open(io.BytesIO(make_png(64))).convert("RGB"))
    out = client.generate_mesh(rgb, model="slow", output_path=tmp_path / "slow.glb")
    assert_glb(out)
    meta = json.loads((tmp_path / "slow.metadata.json").read_text())
    assert "texture_resolution" not in meta["params"]


@pytest.mark.parametrize("kind", ["bytes", "pil", "float_rgba_array"])
def test_generate_accepts_bytes_pil_and_arrays(client: Any, kind: str) -> None:
    png = make_png(96)
    image: Any = {"bytes": png, "pil": Image.open(io.BytesIO(png)),
                  "float_rgba_array": np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
                  / 255.0}[kind]
    result = client.generate(image, seed=7)
    assert result.path is None
    assert_glb(result.data)
    assert result.metadata["params"]["seed"] == 7
    assert result.timings["total_s"] >= result.timings["submit_s"]


def test_ply_output(client: Any, image: Path, tmp_path: Path) -> None:
    result = client.generate(image, output_format="ply", output_path=tmp_path / "t.ply")
    assert result.path.read_bytes().startswith(b"ply\n")
    meta = json.loads((tmp_path / "t.metadata.json").read_text())
    assert meta["params"]["output_format"] == "ply"


def test_bad_local_input_says_what_to_do(client: Any, tmp_path: Path) -> None:
    with pytest.raises(sf3d.InputError, match="no such image file"):
        client.generate(tmp_path / "missing.png")
    with pytest.raises(sf3d.InputError, match="HxWx3"):
        client.generate(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(sf3d.InputError, match="pass a file path"):
        client.generate(12345)


def test_corrupt_image_is_rejected_with_the_servers_reason(client: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PN\x00 not really")
    with pytest.raises(sf3d.RequestRejected) as info:
        client.generate(bad)
    assert info.value.response is not None and info.value.response.status_code in (400, 415)
    assert "image" in info.value.message


def test_async_submit_status_wait_download(client: Any, image: Path, tmp_path: Path) -> None:
    job_id = client.submit(image, model="slow", sleep_s=0.5)
    first = client.status(job_id)
    assert first["status"] in ("queued", "processing")
    seen: list[tuple[str, str | None]] = []
    job = client.wait(job_id, progress=lambda j: seen.append((j["status"], j["stage"])))
    assert job["status"] == "completed"
    assert seen[-1][0] == "completed"
    assert ("processing", "inference") in seen  # the event stream reports each stage
    assert_glb(client.download(job_id, tmp_path / "x.glb"))


def test_polling_without_events_and_wait_timeout(server: ServerProcess, image: Path) -> None:
    client = sf3d.SF3DClient(server.url, use_events=False)
    job_id = client.submit(image, model="slow", sleep_s=1.5)
    with pytest.raises(sf3d.JobTimeout) as info:
        client.wait(job_id, timeout=0.3)
    assert info.value.job_id == job_id
    t0 = time.monotonic()
    assert client.wait(job_id)["status"] == "completed"
    assert time.monotonic() - t0 < 10


def test_cancel_and_failed_job(client: Any, image: Path) -> None:
    job_id = client.submit(image, model="slow", sleep_s=30)
    assert client.cancel(job_id)["status"] in ("canceled", "processing")
    with pytest.raises(sf3d.JobFailed, match="canceled"):
        client.wait(job_id, timeout=20)
    with pytest.raises(sf3d.JobFailed, match="asked to fail") as info:
        client.generate(image, model="slow", fail="error")
    assert info.value.job["status"] == "failed"


def test_sync_endpoint(client: Any, image: Path, tmp_path: Path) -> None:
    result = client.generate(image, sync=True, output_path=tmp_path / "s.glb")
    assert_glb(result.path)
    assert json.loads((tmp_path / "s.metadata.json").read_text())["job_id"] == result.job_id


def test_invalid_parameter_is_a_422_with_the_field(client: Any, image: Path) -> None:
    with pytest.raises(sf3d.RequestRejected, match="texture_resolution") as info:
        client.generate(image, texture_resolution=5)
    assert info.value.response.status_code == 422


def test_queue_full_waits_retry_after_then_succeeds(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    srv = start_server("--models", models(with_slow=True), "--max-queue-size", "1")
    client = sf3d.SF3DClient(srv.url)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"img{i}.png")
        paths[-1].write_bytes(make_png(64 + i))
    items = client.generate_many(paths, tmp_path / "out", concurrency=4, model="slow",
                                 sleep_s=0.5)
    assert [i.ok for i in items] == [True] * 4, [i.error for i in items]
    waits = [json.loads((tmp_path / "out" / f"img{i}.metadata.json").read_text())
             ["client"]["timings"]["queue_full_waits"] for i in range(4)]
    assert sum(waits) >= 1  # some submissions met a 429 and came back after Retry-After
    # with no patience the 429 surfaces, carrying the response and its Retry-After
    impatient = sf3d.SF3DClient(srv.url, queue_wait_s=0)
    for _ in range(2):
        impatient.submit(paths[0], model="slow", sleep_s=2)
    with pytest.raises(sf3d.QueueFull) as info:
        impatient.submit(paths[0], model="slow", sleep_s=2)
    assert info.value.response.status_code == 429 and info.value.retry_after >= 1


def test_batch_survives_server_killed_and_restarted(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    srv = start_server("--models", models(with_slow=True))
    port, data_dir = srv.port, srv.data_dir
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(make_png(64 + i))
    client = sf3d.SF3DClient(srv.url, reconnect_s=90)
    first_done = threading.Event()
    items: list[Any] = []
    batch = threading.Thread(target=lambda: items.extend(client.generate_many(
        paths, tmp_path / "out", concurrency=2, model="slow", sleep_s=1.0,
        on_done=lambda item: first_done.set())))
    batch.start()
    assert first_done.wait(60)
    srv.kill()  # kill -9 mid-batch: jobs in flight, submissions pending
    start_server("--models", models(with_slow=True), data_dir=data_dir, port=port)
    batch.join(180)
    assert not batch.is_alive()
    assert [i.ok for i in items] == [True] * 4, [i.error for i in items]
    for i in range(4):
        assert_glb(tmp_path / "out" / f"p{i}.glb")


def test_wrong_api_key(start_server: Callable[..., ServerProcess], image: Path) -> None:
    srv = start_server("--models", models(), env={"HUB3D_API_KEY": "right-key"})
    with pytest.raises(sf3d.AuthError, match="--api-key"):
        sf3d.SF3DClient(srv.url, api_key="wrong").test_connection()
    with pytest.raises(sf3d.AuthError, match="HUB3D_API_KEY") as info:
        sf3d.SF3DClient(srv.url, api_key="wrong").generate(image)
    assert info.value.response.status_code == 401
    health = sf3d.SF3DClient(srv.url, api_key="right-key").test_connection()
    assert health["status"] == "healthy" and "inflate" in health["models"]


def test_hub_login_redirect_asks_for_a_hub_token(image: Path) -> None:
    with hub_login_standin() as hub:
        client = sf3d.SF3DClient(f"{hub}/user/me/proxy/9299", hub_token="expired")
        with pytest.raises(sf3d.AuthError) as info:
            client.test_connection()
        assert f"the hub did not accept your token: make one at {hub}/hub/token" in str(info.value)
        assert info.value.response.status_code == 302
        with pytest.raises(sf3d.AuthError, match="/hub/token"):
            client.submit(image)


def test_connection_refused_says_restart() -> None:
    client = sf3d.SF3DClient(f"http://127.0.0.1:{free_port()}", reconnect_s=0)
    t0 = time.monotonic()
    with pytest.raises(sf3d.ConnectionFailed, match="hub3d restart"):
        client.test_connection()
    assert time.monotonic() - t0 < 5


def test_headers_and_own_session(server: ServerProcess) -> None:
    session = requests.Session()
    seen: list[dict[str, str]] = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(dict(r.request.headers)))
    client = sf3d.SF3DClient(server.url, api_key="k", hub_token="t", session=session)
    client.health()
    assert client.session is session
    assert seen[0]["ngrok-skip-browser-warning"]
    assert seen[0]["X-API-Key"] == "k" and seen[0]["Authorization"] == "token t"
