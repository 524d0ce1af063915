"""Every way in speaks formats: /models lists each model's, output_format picks the job's own
result, GET /job/{id}/download?format= converts once (atomically, beside it), the client's
--format names files by them, and a bad format is a 422 naming those the model offers."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from hub3d import formats
from tests.client_helpers import CLIENT_PY, REPO, cli_env
from tests.conftest import make_png
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess, wait_done


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("formats") / "data", ["--models", "inflate"])
    yield proc.start(60)
    proc.stop()


def job(server: ServerProcess, png_b64: str, **params: object) -> dict[str, object]:
    r = requests.post(f"{server.url}/generate", timeout=30, json={"image": png_b64, **params})
    assert r.status_code == 202, r.text
    done = wait_done(server.url, r.json()["job_id"], 120)
    assert done["status"] == "completed", done
    return done


def check(tmp: Path, name: str, data: bytes) -> None:
    """The format's own check: usd-core's ARKit rules, the OBJ zip read back, a sound GLB."""
    fmt = formats.get(name)
    path = tmp / fmt.filename("got")
    path.write_bytes(data)
    fmt.check(path)


def test_models_lists_each_format_with_its_suffix_and_media_type(server: ServerProcess) -> None:
    [inflate] = requests.get(f"{server.url}/models", timeout=10).json()
    got = {f["name"]: (f["suffix"], f["media_type"], f["native"]) for f in inflate["formats"]}
    assert got == {"glb": (".glb", "model/gltf-binary", True),
                   "ply": (".ply", "application/octet-stream", True),
                   "obj": (".obj.zip", "application/zip", False),
                   "usdz": (".usdz", "model/vnd.usdz+zip", False)}
    assert inflate["parameters"]["properties"]["output_format"]["enum"] == list(got)


@pytest.mark.parametrize("fmt", ["usdz", "obj"])
def test_output_format_makes_the_jobs_own_result(server: ServerProcess, png_b64: str,
                                                 tmp_path: Path, fmt: str) -> None:
    done = job(server, png_b64, output_format=fmt)
    r = requests.get(f"{server.url}/job/{done['job_id']}/download", timeout=60)
    assert r.headers["content-type"] == formats.get(fmt).media_type
    assert f'filename="{done["job_id"]}{formats.get(fmt).suffix}"' in \
        r.headers["content-disposition"]
    check(tmp_path, fmt, r.content)
    meta = requests.get(f"{server.url}/job/{done['job_id']}/metadata", timeout=10).json()
    assert meta["result"] == f"result{formats.get(fmt).suffix}"
    assert meta["native_result"] == "result.glb" and "convert" in meta["timings"]
    glb = requests.get(f"{server.url}/job/{done['job_id']}/download?format=glb", timeout=30)
    assert glb.ok and glb.headers["content-type"] == "model/gltf-binary"
    assert_valid_glb(glb.content)


def test_download_converts_once_even_when_asked_at_once(server: ServerProcess, png_b64: str,
                                                        tmp_path: Path) -> None:
    done = job(server, png_b64)
    url = f"{server.url}/job/{done['job_id']}/download?format=usdz"
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: requests.get(url, timeout=120), range(6)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1  # one conversion, one file
    check(tmp_path, "usdz", answers[0].content)
    folder = server.data_dir / "jobs" / str(done["job_id"])
    made = folder / "result.usdz"
    before = made.stat().st_mtime_ns
    assert requests.get(url, timeout=30).content == answers[0].content
    assert made.stat().st_mtime_ns == before  # served from what was made, not made again
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp left
    obj = requests.get(f"{server.url}/job/{done['job_id']}/download?format=OBJ", timeout=60)
    assert obj.ok and obj.headers["content-type"] == "application/zip"
    check(tmp_path, "obj", obj.content)


def test_a_format_the_result_cannot_give_is_a_422_naming_those_it_can(
        server: ServerProcess, png_b64: str) -> None:
    glb = job(server, png_b64)
    r = requests.get(f"{server.url}/job/{glb['job_id']}/download?format=ply", timeout=10)
    assert r.status_code == 422 and r.json()["error"]["code"] == "format_not_offered"
    assert "is a glb result: it can be downloaded as glb, obj, usdz, not ply" in \
        r.json()["error"]["message"]
    r = requests.get(f"{server.url}/job/{glb['job_id']}/download?format=fbx", timeout=10)
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_format"
    splats = job(server, png_b64, output_format="ply")
    r = requests.get(f"{server.url}/job/{splats['job_id']}/download?format=usdz", timeout=10)
    assert r.status_code == 422 and "it can be downloaded as ply, not usdz" in r.text
    r = requests.post(f"{server.url}/generate", timeout=30,
                      json={"image": png_b64, "output_format": "stl"})
    assert r.status_code == 422
    assert "unknown output format 'stl': hub3d writes glb, obj, ply, usdz; model 'inflate' " \
        "offers glb, ply, obj, usdz" in r.json()["error"]["message"]


def test_a_failed_conversion_says_so_and_leaves_the_job_intact(server: ServerProcess,
                                                               png_b64: str) -> None:
    done = job(server, png_b64)
    folder = server.data_dir / "jobs" / str(done["job_id"])
    whole = (folder / "result.glb").read_bytes()
    (folder / "result.glb").write_bytes(whole[:200])  # a result damaged on disk
    r = requests.get(f"{server.url}/job/{done['job_id']}/download?format=usdz", timeout=30)
    assert r.status_code == 500 and r.json()["error"]["code"] == "conversion_failed", r.text
    assert "usdz" in r.json()["error"]["message"]
    assert not (folder / "result.usdz").exists()
    assert requests.get(f"{server.url}/job/{done['job_id']}", timeout=10).json()[
        "status"] == "completed"
    (folder / "result.glb").write_bytes(whole)
    assert requests.get(f"{server.url}/job/{done['job_id']}/download?format=usdz",
                        timeout=60).ok


def test_sync_returns_the_format_asked_for(server: ServerProcess, png_b64: str,
                                           tmp_path: Path) -> None:
    r = requests.post(f"{server.url}/generate/sync", timeout=120,
                      json={"image": png_b64, "output_format": "obj"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].endswith('.obj.zip"')
    check(tmp_path, "obj", r.content)


@pytest.mark.parametrize(("fmt", "suffix"), [("usdz", ".usdz"), ("obj", ".obj.zip"),
                                             ("ply", ".ply")])
def test_the_client_takes_any_listed_format_and_names_the_file_by_it(
        server: ServerProcess, tmp_path: Path, fmt: str, suffix: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "shirt.png").write_bytes(make_png(96))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(CLIENT_PY), str(tmp_path / "in"), "--server",
                        server.url, "--out", str(out), "--format", fmt], capture_output=True,
                       text=True, env=cli_env(), timeout=180, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    made = out / f"shirt{suffix}"
    formats.get(fmt).check(made)
    assert (out / "shirt.metadata.json").is_file()


def test_the_client_refuses_a_format_the_model_does_not_offer(server: ServerProcess,
                                                               tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(base64.b64decode(base64.b64encode(make_png(64))))
    r = subprocess.run([sys.executable, str(CLIENT_PY), str(image), "--server", server.url,
                        "--out", str(tmp_path), "--format", "stl"], capture_output=True,
                       text=True, env=cli_env(), timeout=60, cwd=REPO)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "offers glb, ply, obj, usdz, not 'stl'" in r.stderr
