"""A failed job's error_code, everywhere a job's end is read: GET /job, its events, its
metadata, the 422 of /generate/sync; the client's exit status and words per kind of failure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub3d.errors import ErrorCode
from tests.client_helpers import CLIENT_PY, REPO, cli_env, load_client
from tests.conftest import make_png
from tests.servers import ServerProcess, wait_done

MODELS = ("slow=tests.backends.testing:SlowBackend,faulty=tests.backends.faulty:FaultyBackend,"
          "inflate")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("codes") / "data", ["--models", MODELS])
    yield proc.start(60)
    proc.stop()


def submit(server: ServerProcess, png_b64: str, **params: object) -> str:
    r = requests.post(f"{server.url}/generate", timeout=30, json={"image": png_b64, **params})
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def test_the_code_is_on_the_job_its_events_and_its_metadata(server: ServerProcess,
                                                             png_b64: str) -> None:
    job_id = submit(server, png_b64, model="slow", fail="oom")
    job = wait_done(server.url, job_id)
    assert (job["status"], job["error_code"]) == ("failed", "out_of_memory")
    assert job["advice"] == ErrorCode.OUT_OF_MEMORY.advice and "retry later" in job["advice"]
    with requests.get(f"{server.url}/job/{job_id}/events", stream=True, timeout=30) as events:
        last = [json.loads(line[5:]) for line in events.iter_lines(decode_unicode=True)
                if line.startswith("data:")][-1]
    assert (last["status"], last["error_code"]) == ("failed", "out_of_memory")
    meta = requests.get(f"{server.url}/job/{job_id}/metadata", timeout=10)
    assert meta.status_code == 200, meta.text
    assert meta.json()["error_code"] == "out_of_memory" and meta.json()["error"] == job["error"]
    ok = wait_done(server.url, submit(server, png_b64, model="slow"))
    assert (ok["status"], ok["error_code"], ok["advice"]) == ("completed", None, None)


def test_sync_refusal_carries_the_code_and_the_advice(server: ServerProcess,
                                                     png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate/sync", timeout=60,
                      json={"image": png_b64, "model": "faulty", "fault": "no_file"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["code"], error["error_code"]) == ("job_failed", "internal")
    assert "never wrote it" in error["message"] and "report it" in error["advice"]


def test_every_code_has_a_kind_in_the_client_and_a_row_in_the_api_docs() -> None:
    client = load_client()
    docs = (REPO / "docs" / "api.md").read_text()
    for code in ErrorCode:
        assert code.value in client.FAILURE_KINDS, code
        assert f"| `{code.value}` |" in docs, code
    assert set(client.FAILURE_KINDS) == {c.value for c in ErrorCode}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CLIENT_PY), *args], capture_output=True,
                          text=True, env=cli_env(), timeout=120, cwd=REPO)


@pytest.mark.parametrize(("params", "status", "words"), [
    (["--model", "inflate", "--param", "foreground_ratio=0.9"], 0, ""),
    (["--model", "slow", "--param", "fail=\"error\""], 3,
     "[model_error: the model could not make this one"),
    (["--model", "slow", "--param", "fail=\"oom\""], 4, "[out_of_memory: the card is full"),
    (["--model", "faulty", "--param", "fault=\"raise\""], 5,
     "[internal: a bug in the server or the model's backend: report it"),
])
def test_the_client_exits_with_a_status_per_kind_and_says_what_to_do(
        server: ServerProcess, tmp_path: Path, params: list[str], status: int,
        words: str) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(make_png(96))
    r = run_cli(str(image), "--server", server.url, "--out", str(tmp_path / "out"), *params)
    assert r.returncode == status, (r.stdout, r.stderr)
    assert words in r.stdout, r.stdout


def test_a_batch_of_mixed_failures_exits_1_and_a_refused_image_asks_for_another(
        server: ServerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"\x89PNG not really")
    r = run_cli(str(folder), "--server", server.url, "--out", str(tmp_path / "out"))
    assert r.returncode == 3, (r.stdout, r.stderr)  # refused at submit: send another image
    (folder / "good.png").write_bytes(make_png(96))
    r = run_cli(str(folder), "--server", server.url, "--out", str(tmp_path / "out2"),
                "--model", "slow", "--param", "fail=\"oom\"")
    assert r.returncode == 1, (r.stdout, r.stderr)  # one asks for another image, one to retry
