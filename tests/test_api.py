"""The HTTP API against a real server and real worker processes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TEST_MODELS, make_png
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess, wait_done


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("api") / "data"
    srv = ServerProcess(data, ["--models", TEST_MODELS, "--max-queue-size", "4"]).start()
    yield srv
    srv.stop()


def assert_error(r: requests.Response, status: int, code: str, words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code
    assert words.lower() in body["error"]["message"].lower(), body


def test_seed_async_flow(server: ServerProcess, png_b64: str) -> None:
    # The deployment seed's exact JSON: no model field, so the default (first) model serves it.
    r = requests.post(f"{server.url}/generate", json={
        "image": png_b64, "output_format": "glb", "with_texture": True, "seed": 42})
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"job_id", "status", "position", "status_url", "message"}
    assert body["status"] == "queued" and body["position"] >= 1
    job = wait_done(server.url, body["job_id"])
    assert job["status"] == "completed", job
    assert job["model"] == "inflate" and job["processing_time"] > 0
    assert job["download_url"] == f"/job/{body['job_id']}/download"
    glb = requests.get(server.url + job["download_url"])
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert_valid_glb(glb.content)
    meta = requests.get(f"{server.url}/job/{body['job_id']}/metadata").json()
    assert meta["params"]["seed"] == 42 and "inference" in meta["timings"]
    assert 0 < meta["timings"]["intake"] < 5  # the control plane's part: read, check, write
    assert job["timings"] == meta["timings"]
    assert meta["background_removal"] in ("alpha", "mask", "rembg", "border_color", "grabcut")
    preview = requests.get(f"{server.url}/job/{body['job_id']}/preview")
    assert preview.status_code == 200 and preview.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_sync_glb_and_ply(server: ServerProcess, png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate/sync", json={"image": png_b64})
    assert r.status_code == 200 and r.headers["x-job-id"]
    assert_valid_glb(r.content)
    r = requests.post(f"{server.url}/generate/sync",
                      json={"image": png_b64, "output_format": "ply"})
    assert r.status_code == 200, r.text
    header = r.content[: r.content.index(b"end_header")].decode()
    for prop in ("x", "nx", "f_dc_0", "opacity", "scale_2", "rot_3"):
        assert f"property float {prop}\n" in header


def test_multipart_upload(server: ServerProcess, png_bytes: bytes) -> None:
    r = requests.post(f"{server.url}/generate", files={"image": ("shirt.png", png_bytes)},
                      data={"model": "slow", "seed": "7", "sleep_s": "0.01"})
    assert r.status_code == 202, r.text
    job = wait_done(server.url, r.json()["job_id"])
    assert job["status"] == "completed"
    assert job["params"]["seed"] == 7 and job["params"]["sleep_s"] == 0.01  # form text, typed


def test_failed_job_is_failed_not_5xx(server: ServerProcess, png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate", json={"image": png_b64, "model": "slow",
                                                      "fail": "error"})
    job = wait_done(server.url, r.json()["job_id"])
    assert job["status"] == "failed" and "asked to fail" in job["error"]
    assert_error(requests.get(f"{server.url}/job/{job['job_id']}/download"), 409, "job_not_ready",
                 "failed")
    r = requests.post(f"{server.url}/generate", json={"image": png_b64, "model": "slow",
                                                      "fail": "bug"})
    job = wait_done(server.url, r.json()["job_id"])
    assert job["status"] == "failed" and "ZeroDivisionError" in job["error"]


def test_cancel_queued_and_running(server: ServerProcess, png_b64: str) -> None:
    running = requests.post(f"{server.url}/generate", json={
        "image": png_b64, "model": "slow", "sleep_s": 30}).json()["job_id"]
    queued = requests.post(f"{server.url}/generate", json={
        "image": png_b64, "model": "slow"}).json()["job_id"]
    end = time.monotonic() + 30
    while requests.get(f"{server.url}/job/{running}").json()["stage"] != "inference":
        assert time.monotonic() < end
        time.sleep(0.05)
    assert requests.delete(f"{server.url}/job/{queued}").json()["status"] == "canceled"
    r = requests.delete(f"{server.url}/job/{running}")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert_error(requests.delete(f"{server.url}/job/{running}"), 409, "job_not_ready", "canceled")
    # The killed worker comes back for the next job.
    r = requests.post(f"{server.url}/generate/sync", json={"image": png_b64, "model": "slow"})
    assert r.status_code == 200
    assert requests.get(f"{server.url}/job/{running}").json()["status"] == "canceled"


def test_cancel_while_the_model_loads(start_server: Callable[..., ServerProcess],
                                      png_b64: str) -> None:
    # A cancel during the load drops the job; the load goes on for the next one and is not
    # mistaken for a failed load ("died (signal 9) — likely out of memory", then 503s).
    srv = start_server("--models", "slowload=tests.backends.testing:SlowLoadBackend")
    first = requests.post(f"{srv.url}/generate", json={"image": png_b64}).json()["job_id"]
    end = time.monotonic() + 10
    while requests.get(f"{srv.url}/job/{first}").json()["stage"] != "loading_model":
        assert time.monotonic() < end
        time.sleep(0.02)
    r = requests.delete(f"{srv.url}/job/{first}")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    r = requests.post(f"{srv.url}/generate", json={"image": png_b64})
    assert r.status_code == 202, r.text
    assert wait_done(srv.url, r.json()["job_id"])["status"] == "completed"
    job = requests.get(f"{srv.url}/job/{first}").json()
    assert job["status"] == "canceled" and job["error_code"] == "canceled", job
    model = requests.get(f"{srv.url}/models").json()[0]
    assert model["state"] == "ready" and model["error"] is None, model


def test_queue_full_gets_429_with_retry_after(server: ServerProcess, png_b64: str) -> None:
    blocker = requests.post(f"{server.url}/generate", json={
        "image": png_b64, "model": "slow", "sleep_s": 2}).json()["job_id"]
    end = time.monotonic() + 30
    while requests.get(f"{server.url}/job/{blocker}").json()["status"] != "processing":
        assert time.monotonic() < end
        time.sleep(0.05)
    results = [requests.post(f"{server.url}/generate", json={"image": png_b64, "model": "slow"})
               for _ in range(7)]
    accepted = [r.json()["job_id"] for r in results if r.status_code == 202]
    refused = [r for r in results if r.status_code != 202]
    assert len(accepted) == 4 and len(refused) == 3  # --max-queue-size 4
    for r in refused:
        assert_error(r, 429, "queue_full", "queue is full")
        assert int(r.headers["retry-after"]) >= 1
    positions = [requests.get(f"{server.url}/job/{j}").json()["position"] for j in accepted]
    assert positions == [1, 2, 3, 4]
    for jid in [blocker, *accepted]:
        assert wait_done(server.url, jid)["status"] == "completed"


def test_sse_events_in_order(server: ServerProcess, png_b64: str) -> None:
    jid = requests.post(f"{server.url}/generate", json={
        "image": png_b64, "model": "slow", "sleep_s": 0.3}).json()["job_id"]
    seen: list[tuple[str, str | None]] = []
    with requests.get(f"{server.url}/job/{jid}/events", stream=True, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                job = json.loads(line[6:])
                seen.append((job["status"], job["stage"]))
    statuses = [s for s, _ in seen]
    assert statuses[-1] == "completed"
    order = ["queued", "processing", "completed"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    stages = [st for _, st in seen if st]
    assert stages.index("inference") < stages.index("exporting")


def test_health_queue_models_metrics(server: ServerProcess) -> None:
    health = requests.get(f"{server.url}/health").json()
    assert health["status"] == "healthy" and health["default_model"] == "inflate"
    assert set(health["models"]) == {"inflate", "slow"}
    assert health["queue"]["max_queue_size"] == 4 and health["cuda"] is False
    models = {m["name"]: m for m in requests.get(f"{server.url}/models").json()}
    assert models["inflate"]["default"] is True
    assert "foreground_ratio" in models["inflate"]["parameters"]["properties"]
    assert "sleep_s" in models["slow"]["parameters"]["properties"]
    q = requests.get(f"{server.url}/queue").json()
    assert {"queued", "processing", "order"} <= set(q)
    assert q["slots"] == q["max_concurrent"] == 2  # one per model: inflate and slow, on the CPU
    text = requests.get(f"{server.url}/metrics").text
    assert 'hub3d_jobs_finished_total{model="inflate",status="completed"}' in text
    assert "hub3d_job_processing_seconds_bucket" in text
    spec = requests.get(f"{server.url}/openapi.json").json()
    assert {"/generate", "/generate/sync", "/job/{job_id}", "/job/{job_id}/events"} <= set(
        spec["paths"])


@pytest.mark.parametrize("body,status,code,words", [
    ({}, 400, "invalid_input", "exactly one of 'image'"),
    ({"image": "not base64!!"}, 400, "invalid_input", "not valid base64"),
    ({"image": base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()},
     415, "unsupported_media_type", "png"),
    ({"image": "AAAA", "model": "trellis"}, 404, "unknown_model", "serves: inflate, slow"),
    ({"image": "AAAA", "remesh_option": "Quad"}, 422, "invalid_parameters", "remesh_option"),
    ({"image": "AAAA", "seed": -1}, 422, "invalid_parameters", "seed"),
    ({"image": "AAAA", "colour": "red"}, 422, "invalid_parameters", "colour"),
])
def test_bad_requests(server: ServerProcess, body: dict[str, Any], status: int, code: str,
                      words: str) -> None:
    assert_error(requests.post(f"{server.url}/generate", json=body), status, code, words)


def test_bad_bodies_and_ids(server: ServerProcess) -> None:
    assert_error(requests.post(f"{server.url}/generate", data=b"{oops",
                               headers={"content-type": "application/json"}),
                 400, "invalid_input", "not valid json")
    assert_error(requests.post(f"{server.url}/generate", data=b"x",
                               headers={"content-type": "text/plain"}),
                 415, "unsupported_media_type", "multipart")
    assert_error(requests.get(f"{server.url}/job/AAAAAAAAAAAAAAAAAAAAAA"), 404, "job_not_found",
                 "no job")
    assert_error(requests.get(f"{server.url}/job/..%2F..%2Fetc"), 404, "not_found", "")
    assert_error(requests.get(f"{server.url}/job/short"), 404, "job_not_found", "no job")


def test_large_body_refused_with_413(server: ServerProcess) -> None:
    big = base64.b64encode(b"\0" * 40_000_000).decode()
    assert_error(requests.post(f"{server.url}/generate", json={"image": big}), 413,
                 "image_too_large", "limit")


def test_nothing_left_behind_by_refused_jobs(server: ServerProcess) -> None:
    before = set((server.data_dir / "jobs").iterdir())
    bad = base64.b64encode(make_png()[:200]).decode()  # truncated PNG
    r = requests.post(f"{server.url}/generate", json={"image": bad})
    assert r.status_code == 400, r.text
    assert set((server.data_dir / "jobs").iterdir()) == before
    assert Path(server.data_dir / "jobs").is_dir()
