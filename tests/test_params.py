"""Each backend's parameters, declared once: validation, /models, the OpenAPI body and
metadata.json all come from its params model (a real server; sf3d and sam3d are served but never
loaded, so their requests are checked with no weights or upstream code)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hub3d.models.inflate import InflateBackend
from hub3d.models.sam3d import SAM3DBackend
from hub3d.models.sf3d import SF3DBackend
from hub3d.workers.runner import stored_params
from tests.backends.testing import SlowBackend
from tests.servers import ServerProcess, wait_done

MODELS = "inflate,slow=tests.backends.testing:SlowBackend,sf3d,sam3d"
BACKENDS = {"inflate": InflateBackend, "slow": SlowBackend, "sf3d": SF3DBackend,
            "sam3d": SAM3DBackend}
RESERVED = {"image", "image_url", "model", "mask"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("params") / "data", ["--models", MODELS]).start()
    yield srv
    srv.stop()


def refusal(srv: ServerProcess, body: dict[str, Any]) -> str:
    r = requests.post(f"{srv.url}/generate", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_parameters"
    return str(r.json()["error"]["message"])


@pytest.mark.parametrize("model,param,takes", [
    ("sf3d", "with_texture", "texture_resolution"),
    ("sam3d", "texture_resolution", "stage1_inference_steps"),
    ("sam3d", "remesh_option", "with_texture"),
    ("slow", "with_texture", "sleep_s"),
])
def test_a_parameter_the_model_does_not_take_is_a_422_naming_what_it_takes(
        server: ServerProcess, png_b64: str, model: str, param: str, takes: str) -> None:
    message = refusal(server, {"image": png_b64, "model": model, param: 1})
    assert f"model '{model}' does not take {param}" in message, message
    assert takes in message and "seed" in message, message


def test_inflate_refuses_a_remesh_it_would_not_do(server: ServerProcess, png_b64: str) -> None:
    assert "'none'" in refusal(server, {"image": png_b64, "remesh_option": "quad"})


def test_models_lists_each_backends_own_parameters_with_ranges(server: ServerProcess) -> None:
    models = {m["name"]: m for m in requests.get(f"{server.url}/models", timeout=10).json()}
    for name, cls in BACKENDS.items():
        schema = models[name]["parameters"]
        assert set(schema["properties"]) == set(cls.params_model.model_fields), name
        assert schema["additionalProperties"] is False
    sf3d = models["sf3d"]["parameters"]["properties"]
    assert "with_texture" not in sf3d
    assert (sf3d["texture_resolution"]["minimum"], sf3d["texture_resolution"]["maximum"],
            sf3d["texture_resolution"]["default"]) == (512, 2048, 1024)
    assert sf3d["remesh_option"]["enum"] == ["none", "triangle", "quad"]
    assert sf3d["foreground_ratio"]["description"]
    sam3d = models["sam3d"]["parameters"]["properties"]
    assert not {"texture_resolution", "remesh_option", "foreground_ratio"} & set(sam3d)
    assert sam3d["with_texture"]["default"] is False


def test_openapi_body_is_one_variant_per_model_from_its_params(server: ServerProcess) -> None:
    spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    for path in ("/generate", "/generate/sync"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        for media in ("application/json", "multipart/form-data"):
            variants = {v["properties"]["model"]["enum"][0]: v
                        for v in content[media]["schema"]["anyOf"]}
            assert set(variants) == set(BACKENDS)
            for name, cls in BACKENDS.items():
                assert set(variants[name]["properties"]) == RESERVED | set(
                    cls.params_model.model_fields), (path, media, name)
                assert variants[name]["additionalProperties"] is False
            assert variants["inflate"]["required"] == []  # the default model: "model" optional
            assert variants["sf3d"]["required"] == ["model"]


def test_metadata_records_the_models_own_params(server: ServerProcess, png_b64: str) -> None:
    r = requests.post(f"{server.url}/generate", timeout=30,
                      json={"image": png_b64, "model": "slow", "sleep_s": 0.01})
    assert r.status_code == 202, r.text
    job = wait_done(server.url, r.json()["job_id"])
    assert job["status"] == "completed", job
    meta = requests.get(f"{server.url}/job/{job['job_id']}/metadata", timeout=10).json()
    assert meta["params"] == {"seed": 42, "output_format": "glb", "sleep_s": 0.01,
                              "fail": "none"}
    assert job["params"] == meta["params"]


def test_a_job_stored_by_an_older_server_still_runs_without_the_dropped_params() -> None:
    # Older servers stored every shared parameter with every job (sf3d got with_texture).
    params = stored_params(SF3DBackend, {"seed": 1, "with_texture": True,
                                         "texture_resolution": 512})
    assert params.model_dump() == {**SF3DBackend.params_model().model_dump(), "seed": 1,
                                   "texture_resolution": 512}
