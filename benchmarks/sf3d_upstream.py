"""SF3D's own `run_image` called directly vs the same job through hub3d (`/generate/sync`).

Both run the real SF3D code (../shared/upstream) with the same random checkpoint of the same
config (full size by default, `--reduced` for the tests' small one) in the SF3D env, each in a
fresh process of its own: a direct process loads, builds the edge table, then times
resize_foreground → run_image → GLB; `hub3d serve` starts, and the sync request is timed end to
end (upload, background, the same three steps, response), plus serve start → first GLB with
the load included. Random weights give no surface, so both paths use the tests' sphere density
(tests/upstream/sphere_sf3d.py). The two never run at once (a full-size model is ~9 GB);
rounds alternate which goes first.

    python -m benchmarks.sf3d_upstream --env ~/.venvs/hub3d-sf3d --reps 3
    python -m benchmarks.sf3d_upstream --env ENV --reduced --reps 2 --texture 512   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests
from PIL import Image

from benchmarks.common import REPO, free_port, save, start, stop, table
from tests.upstream.sf3d_data import FULL_RESOLUTION, SF3D_CONFIG, extract_sf3d, write_tets
from tests.upstream.sf3d_model import BUILDER, build_model

DIRECT = """
import json, resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import torch
from PIL import Image
from sf3d.system import SF3D
from sf3d.utils import resize_foreground
from tests.upstream.sphere_sf3d import install_sphere
model = SF3D.from_pretrained(sys.argv[2], "config.yaml", "model.safetensors").eval()
model.isosurface_helper.all_edges  # as hub3d's load does
install_sphere(model)
load_s = time.perf_counter() - t0
image = Image.open(sys.argv[3]).convert("RGBA")
t1 = time.perf_counter()
with torch.no_grad():
    rgba = resize_foreground(image, 0.85)
    mesh, _ = model.run_image(rgba, bake_resolution=int(sys.argv[4]), remesh="none",
                              vertex_count=-1, estimate_illumination=False)
    glb = mesh.export(file_type="glb", include_normals=True)
run_s = time.perf_counter() - t1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps({"load_s": load_s, "run_s": run_s, "glb_bytes": len(glb), "peak_rss_gb": rss}))
"""


def _env(args: argparse.Namespace, src: Path, ckpt: Path) -> dict[str, str]:
    python = str(Path(args.env) / "bin" / "python")
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
            "HUB3D_PYTHON_SF3D": python, "HUB3D_SF3D_SRC": str(src),
            "HUB3D_SF3D_CHECKPOINT": str(ckpt)}


def direct(args: argparse.Namespace, src: Path, ckpt: Path, image: Path) -> dict[str, Any]:
    env = _env(args, src, ckpt)
    out = subprocess.run([env["HUB3D_PYTHON_SF3D"], "-c", DIRECT, str(src), str(ckpt),
                          str(image), str(args.texture)], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=1800)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _peak_rss(pid_of: Any, stop_event: threading.Event, peak: list[float]) -> None:
    while not stop_event.is_set():
        pid = pid_of()
        if pid:
            try:
                peak[0] = max(peak[0], psutil.Process(pid).memory_info().rss / 1024**3)
            except psutil.Error:
                pass
        stop_event.wait(0.2)


def hub3d(args: argparse.Namespace, src: Path, ckpt: Path, image: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        t0 = time.perf_counter()
        proc = start([str(REPO / ".venv" / "bin" / "python"), "-m", "hub3d", "serve", "--port",
                      str(port), "--data-dir", data, "--models",
                      "sf3d=tests.upstream.sphere_sf3d:SphereSF3D", "--preload"], url,
                     env=_env(args, src, ckpt))
        workers: list[int] = []

        def pid() -> int | None:
            if not workers:
                try:
                    info = {m["name"]: m for m in requests.get(f"{url}/models", timeout=2).json()}
                    found = info["sf3d"]["workers"][0]["pid"]
                    if found:
                        workers.append(int(found))
                except (requests.RequestException, KeyError, IndexError):
                    return None
            return workers[0] if workers else None

        done, peak = threading.Event(), [0.0]
        watcher = threading.Thread(target=_peak_rss, args=(pid, done, peak), daemon=True)
        watcher.start()
        try:
            # --preload: the model loads at start, so the timed job is, as in the direct
            # process, the first run_image after the load; serve → GLB counts both.
            _wait_ready(url)
            t1 = time.perf_counter()
            r = requests.post(f"{url}/generate/sync", timeout=1800,
                              files={"image": ("in.png", image.read_bytes(), "image/png")},
                              data={"model": "sf3d", "texture_resolution": str(args.texture)})
            first = time.perf_counter()
            r.raise_for_status()
            job = requests.get(f"{url}/job/{r.headers['X-Job-Id']}", timeout=10).json()
        finally:
            done.set()
            stop(proc)
            for gone in workers:  # never two models at once: the worker must be gone too
                try:
                    psutil.Process(gone).wait(30)
                except psutil.Error:
                    pass
    return {"serve_to_first_glb_s": first - t0, "ready_s": t1 - t0, "e2e_s": first - t1,
            "job_s": job["processing_time"], "glb_bytes": len(r.content),
            "peak_rss_gb": peak[0]}


def _wait_ready(url: str) -> None:
    while True:
        state = requests.get(f"{url}/health", timeout=5).json()["models"]["sf3d"]["state"]
        if state == "ready":
            return
        if state == "failed":
            raise RuntimeError(requests.get(f"{url}/health", timeout=5).text)
        time.sleep(0.1)


def checkpoint(args: argparse.Namespace, src: Path, tmp: Path) -> Path:
    python = Path(args.env) / "bin" / "python"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.reduced:
        return build_model(python, src, tmp / "model", env)
    write_tets(src, FULL_RESOLUTION)
    (tmp / "model").mkdir()
    subprocess.run([str(python), str(BUILDER), "--src", str(src), "--config", str(SF3D_CONFIG),
                    "--out", str(tmp / "model")], check=True, env=env, timeout=1800)
    return tmp / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=os.environ.get("HUB3D_TEST_SF3D_ENV"),
                        help="the SF3D env (the recipe's --env); HUB3D_TEST_SF3D_ENV")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--texture", type=int, default=1024)
    parser.add_argument("--reduced", action="store_true", help="the tests' small config")
    args = parser.parse_args()
    if not args.env:
        parser.error("--env is required (the SF3D env the recipe built)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = extract_sf3d(tmp / "src")
        started = time.perf_counter()
        ckpt = checkpoint(args, src, tmp)
        print(f"checkpoint ({'reduced' if args.reduced else 'full'} size, random) built in "
              f"{time.perf_counter() - started:.0f} s")
        image = tmp / "disc.png"
        _disc().save(image)
        rows: list[dict[str, Any]] = []
        for rep in range(args.reps):
            order = (direct, hub3d) if rep % 2 == 0 else (hub3d, direct)
            got = {fn.__name__: fn(args, src, ckpt, image) for fn in order}
            d, h = got["direct"], got["hub3d"]
            rows.append({"rep": rep + 1, "direct_run_s": round(d["run_s"], 2),
                         "hub3d_e2e_s": round(h["e2e_s"], 2),
                         "ratio": round(h["e2e_s"] / d["run_s"], 3),
                         "direct_load_s": round(d["load_s"], 1),
                         "hub3d_ready_s": round(h["ready_s"], 1),
                         "serve_to_first_glb_s": round(h["serve_to_first_glb_s"], 1),
                         "direct_rss_gb": round(d["peak_rss_gb"], 2),
                         "worker_rss_gb": round(h["peak_rss_gb"], 2)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    med_d = statistics.median(r["direct_run_s"] for r in rows)
    med_h = statistics.median(r["hub3d_e2e_s"] for r in rows)
    print(table(rows, list(rows[0])))
    print(f"median: direct {med_d:.2f} s, hub3d {med_h:.2f} s, ratio {med_h / med_d:.3f} "
          f"(target <= 1.03 at full size); serve -> first GLB median "
          f"{statistics.median(r['serve_to_first_glb_s'] for r in rows):.1f} s")
    save("sf3d_upstream", {"args": vars(args), "rows": rows, "median_direct_s": med_d,
                           "median_hub3d_s": med_h})


def _disc(size: int = 512) -> Image.Image:
    """An RGBA orange disc (the tests' input): the object comes with its alpha."""
    img = Image.new("RGBA", (size, size), (200, 200, 200, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(img).ellipse([size * 0.2, size * 0.2, size * 0.8, size * 0.8],
                                fill=(230, 120, 40, 255))
    return img


if __name__ == "__main__":
    main()
