"""The floor for the overhead benchmark: the same inflate function behind one bare FastAPI route.

Run: python benchmarks/bare_app.py PORT
"""

from __future__ import annotations

import base64
import sys
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response

from benchmarks.direct import infer

app = FastAPI()


@app.post("/infer")
def run(payload: dict) -> Response:  # sync def: runs in the threadpool, like most bare apps
    png = base64.b64decode(payload["image"])
    t0 = time.perf_counter()
    glb = infer(png)
    compute_ms = f"{(time.perf_counter() - t0) * 1000:.3f}"  # the function's own time
    return Response(glb, media_type="model/gltf-binary", headers={"X-Compute-Ms": compute_ms})


if __name__ == "__main__":
    import uvicorn

    del Request
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
