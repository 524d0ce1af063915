"""The peer for the overhead benchmark: the same inflate function under LitServe, one CPU worker.

Run: python benchmarks/litserve_app.py PORT      (POST /predict {"image": <base64 PNG>})
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run
# time to build the route's body type.
import base64
import sys
import time
from typing import Any

import litserve as ls
from fastapi import Response

from benchmarks.direct import infer


class InflateAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        infer  # noqa: B018 — imported at module load; nothing to set up per device

    def decode_request(self, request: dict[str, Any]) -> bytes:
        return base64.b64decode(request["image"])

    def predict(self, png: bytes) -> tuple[bytes, float]:
        t0 = time.perf_counter()
        return infer(png), (time.perf_counter() - t0) * 1000  # the function's own time

    def encode_response(self, output: tuple[bytes, float]) -> Response:
        glb, compute_ms = output
        return Response(content=glb, media_type="model/gltf-binary",
                        headers={"X-Compute-Ms": f"{compute_ms:.3f}"})


if __name__ == "__main__":
    server = ls.LitServer(InflateAPI(), accelerator="cpu", devices=1, workers_per_device=1,
                          timeout=120)
    server.run(host="127.0.0.1", port=int(sys.argv[1]), num_api_servers=1, log_level="warning",
               generate_client_file=False)
