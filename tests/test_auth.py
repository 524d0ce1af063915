"""API key: every route but a minimal /health needs X-API-Key; the key never leaks."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests.servers import ServerProcess

KEY = "s3cret-key-for-tests-0123456789"


def test_every_route_needs_the_key(start_server: Callable[..., ServerProcess],
                                   png_b64: str) -> None:
    srv = start_server("--models", "inflate", env={"HUB3D_API_KEY": KEY})
    spec = requests.get(f"{srv.url}/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        url = srv.url + path.replace("{job_id}", "A" * 22).replace("{name}", "inflate")
        for method in ops:
            for headers in ({}, {"X-API-Key": "wrong"}):
                r = requests.request(method, url, headers=headers, json={})
                if path == "/health":
                    assert r.status_code == 200 and set(r.json()) == {"status"}
                    continue
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.json()["error"]["code"] == "unauthorized"
                assert KEY not in r.text
                checked += 1
    assert checked >= 20
    good = {"X-API-Key": KEY}
    assert "models" in requests.get(f"{srv.url}/health", headers=good).json()
    r = requests.post(f"{srv.url}/generate/sync", json={"image": png_b64}, headers=good)
    assert r.status_code == 200
    assert KEY not in srv.log()


def test_binds_loopback_by_default(start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server("--models", "inflate")
    assert "http://127.0.0.1:" in srv.log()


def test_docs_declare_the_key_so_try_it_out_sends_it(
        start_server: Callable[..., ServerProcess], png_b64: str) -> None:
    srv = start_server("--models", "inflate", env={"HUB3D_API_KEY": KEY})
    spec = requests.get(f"{srv.url}/openapi.json").json()
    (scheme,) = spec["components"]["securitySchemes"].values()
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Key"}
    name = next(iter(spec["components"]["securitySchemes"]))
    guarded = [(p, m) for p, ops in spec["paths"].items() for m, op in ops.items()
               if {name: []} in op.get("security", [])]
    assert ("/generate", "post") in guarded and ("/job/{job_id}/download", "get") in guarded
    assert ("/health", "get") not in guarded  # open for the hub's and the laptop's checks
