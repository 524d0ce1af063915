"""A first GLB from a sample image, through the server's own HTTP API (as the laptop would)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

__all__ = ["run_sample", "sample_image"]


def sample_image(data_dir: str | Path) -> Path:
    """The repo's samples/tshirt.png when present, else a drawn stand-in in the data dir."""
    import hub3d

    bundled = Path(hub3d.__file__).resolve().parents[1] / "samples" / "tshirt.png"
    if bundled.is_file():
        return bundled
    from PIL import Image, ImageDraw

    path = Path(data_dir).expanduser() / "samples" / "sample.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (512, 512), "white")
        draw = ImageDraw.Draw(img)
        draw.ellipse((110, 80, 400, 430), fill=(200, 60, 40))
        draw.rectangle((190, 170, 320, 260), fill=(40, 60, 170))
        img.save(path)
    return path


def run_sample(handle: Any, image: str | Path | None = None, *, model: str | None = None,
               out_dir: str | Path | None = None, timeout: float = 600.0,
               **params: Any) -> dict[str, Any]:
    """Submit an image, wait for the job, download the GLB. Returns the job (+ `path`)."""
    import requests

    data_dir = Path(handle.settings.data_dir)
    image = Path(image) if image else sample_image(data_dir)
    out = Path(out_dir) if out_dir else data_dir / "samples"
    out.mkdir(parents=True, exist_ok=True)
    body = {"image": base64.b64encode(image.read_bytes()).decode(), **params}
    if model:
        body["model"] = model
    with requests.Session() as http:
        http.headers.update(handle.headers())
        r = http.post(f"{handle.url}/generate", json=body, timeout=60)
        if r.status_code != 202:
            raise RuntimeError(f"submit refused ({r.status_code}): {r.text[:500]}")
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + timeout
        while True:
            job = http.get(f"{handle.url}/job/{job_id}", timeout=30).json()
            if job["status"] in ("completed", "failed", "canceled"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            time.sleep(0.25)
        if job["status"] != "completed":
            raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
        r = http.get(f"{handle.url}/job/{job_id}/download", timeout=120)
        r.raise_for_status()
    from hub3d import formats

    path = out / formats.get(str(params.get("output_format") or "glb")).filename(image.stem)
    path.write_bytes(r.content)
    return {**job, "path": str(path), "bytes": len(r.content)}
