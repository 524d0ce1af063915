"""Idempotency-Key on POST /generate: a retried submission gets the first job, never a second."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from hub3d.jobs.store import JobStore
from tests.client_helpers import load_client
from tests.conftest import TEST_MODELS
from tests.servers import ServerProcess, wait_done
from tests.test_overload import job_rows

Start = Callable[..., ServerProcess]


def post(url: str, body: dict[str, Any], key: str | None, path: str = "/generate"
         ) -> requests.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{url}{path}", json=body, headers=headers, timeout=60)


def test_same_key_same_request_returns_the_first_job(start_server: Start, png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    body = {"image": png_b64, "model": "slow", "sleep_s": 0.5, "seed": 3}
    first = post(srv.url, body, "order-1")
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = post(srv.url, body, "order-1")
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "already submitted" in again.json()["message"]
    job = wait_done(srv.url, first.json()["job_id"])
    assert job["status"] == "completed"
    late = post(srv.url, body, "order-1")  # after it finished: still the same job, now completed
    assert late.json()["job_id"] == job["job_id"] and late.json()["status"] == "completed"
    sync = post(srv.url, body, "order-1", "/generate/sync")  # the sync route: the same file
    assert sync.status_code == 200 and sync.headers["x-job-id"] == job["job_id"]
    assert sync.content[:4] == b"glTF"
    assert job_rows(srv.data_dir) == {"completed": 1}


def test_same_key_for_a_different_request_is_refused(start_server: Start, png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    first = post(srv.url, {"image": png_b64, "model": "slow", "seed": 1}, "k-2")
    other = post(srv.url, {"image": png_b64, "model": "slow", "seed": 2}, "k-2")
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert first.json()["job_id"] in error["message"] and "new key" in error["message"]
    fresh = post(srv.url, {"image": png_b64, "model": "slow", "seed": 2}, "k-3")
    assert fresh.status_code == 202 and fresh.json()["job_id"] != first.json()["job_id"]
    assert sum(job_rows(srv.data_dir).values()) == 2


def test_concurrent_copies_of_one_submission_make_one_job(start_server: Start,
                                                          png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS, "--max-queue-size", "50")
    body = {"image": png_b64, "model": "slow", "sleep_s": 0.2}
    gate = threading.Barrier(16)

    def send(_: int) -> requests.Response:
        gate.wait()
        return post(srv.url, body, "burst-key")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(16)))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["job_id"] for r in answers}) == 1
    assert wait_done(srv.url, answers[0].json()["job_id"])["status"] == "completed"
    assert job_rows(srv.data_dir) == {"completed": 1}
    assert len(list((srv.data_dir / "jobs").iterdir())) == 1  # no folder left by the copies


def test_a_known_key_is_answered_while_the_queue_is_full(start_server: Start,
                                                         png_b64: str) -> None:
    srv = start_server("--models", TEST_MODELS, "--max-queue-size", "1")
    running = post(srv.url, {"image": png_b64, "model": "slow", "sleep_s": 3}, None)
    queued_body = {"image": png_b64, "model": "slow"}
    queued = post(srv.url, queued_body, "queued-key")
    assert running.status_code == 202 and queued.status_code == 202, queued.text
    assert post(srv.url, queued_body, "another-key").status_code == 429
    retry = post(srv.url, queued_body, "queued-key")
    assert retry.status_code == 202 and retry.json()["job_id"] == queued.json()["job_id"]


@pytest.mark.parametrize("key", ["has space", "x" * 129, "naïve"])
def test_a_malformed_key_is_refused_with_the_reason(start_server: Start, png_b64: str,
                                                    key: str) -> None:
    srv = start_server("--models", TEST_MODELS)
    r = requests.post(f"{srv.url}/generate", json={"image": png_b64, "model": "slow"},
                      headers={"Idempotency-Key": key.encode().decode("latin-1")})
    assert r.status_code == 422, r.text
    assert "Idempotency-Key" in r.json()["error"]["message"]
    assert sum(job_rows(srv.data_dir).values()) == 0


def test_a_data_dir_from_before_keys_gains_the_columns(tmp_path: Path) -> None:
    """An existing jobs.sqlite3 without the key columns opens, keeps its jobs, takes keys."""
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT"
                   " NULL, model TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,"
                   " stage TEXT, message TEXT NOT NULL DEFAULT '', error TEXT, attempts INTEGER"
                   " NOT NULL DEFAULT 0, created_at REAL NOT NULL, started_at REAL, finished_at"
                   " REAL, result TEXT, media_type TEXT, has_mask INTEGER NOT NULL DEFAULT 0,"
                   " device TEXT, timings TEXT NOT NULL DEFAULT '{}')")
        db.execute("INSERT INTO jobs (id, model, params, status, created_at) VALUES"
                   " ('old-job-0000000000000', 'inflate', '{}', 'completed', 1.0)")
    store = JobStore(tmp_path)
    try:
        old = store.get("old-job-0000000000000")
        assert old is not None and old.status.value == "completed"
        assert old.idempotency_key is None
        assert store.by_idempotency_key("anything") is None
    finally:
        store.close()


class DropFirstReply:
    """A loopback TCP relay to the server that loses the answer to the first POST: the server
    has accepted the job, the client sees the connection reset before reading its id."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.dropped = upstream_port, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            armed = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, armed, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, armed, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, armed: threading.Event,
              to_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_server and data.startswith(b"POST /generate"):
                    armed.set()
                if not to_server and armed.is_set() and self.dropped == 0:
                    self.dropped += 1  # the reply is lost on the way back
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def relay(start_server: Start) -> Iterator[tuple[ServerProcess, DropFirstReply]]:
    srv = start_server("--models", TEST_MODELS)
    proxy = DropFirstReply(srv.port)
    yield srv, proxy
    proxy.close()


def test_client_retry_after_a_lost_reply_gets_the_same_job(
        relay: tuple[ServerProcess, DropFirstReply], png_bytes: bytes) -> None:
    srv, proxy = relay
    client = load_client().SF3DClient(f"http://127.0.0.1:{proxy.port}", reconnect_s=10)
    job_id = client.submit(png_bytes, model="slow")
    assert proxy.dropped == 1  # the first answer really was lost
    assert wait_done(srv.url, job_id)["status"] == "completed"
    assert job_rows(srv.data_dir) == {"completed": 1}  # the retry did not queue a second job
