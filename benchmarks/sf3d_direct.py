"""Upstream SF3D called directly, as its own run.py does: run with the SF3D env's Python.

    python benchmarks/sf3d_direct.py --src SRC --checkpoint DIR --image RGBA.png \\
        --texture 1024 --reps 5 --device cuda

One fresh process: load (`from_pretrained`, `.to(device)`, the marching-tets edge table, the
tests' sphere density), then the first job of the process and `--reps` warm ones, each
resize_foreground → run_image (no_grad, bf16 autocast on CUDA) → GLB export, timed per step.
Every GLB is parsed and its vertices counted. Prints one JSON line last. Also holds the GLB
reader the hub3d side of the benchmark uses (stdlib only: this runs in the SF3D env).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Any

__all__ = ["glb_vertices", "gpu_query", "nvidia_apps_mib"]


def glb_vertices(data: bytes) -> int:
    """Vertices of a GLB (every primitive's POSITION count); raises ValueError on a file that is
    not a complete binary glTF 2.0, so a broken result can never pass as a fast one."""
    if len(data) < 20 or data[:4] != b"glTF":
        raise ValueError(f"not a GLB ({len(data)} bytes, starts {data[:4]!r})")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2 or length != len(data):
        raise ValueError(f"GLB version {version}, header length {length} of {len(data)} bytes")
    chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
    if chunk_type != 0x4E4F534A:  # "JSON"
        raise ValueError("GLB's first chunk is not JSON")
    doc = json.loads(data[20:20 + chunk_len])
    accessors = doc.get("accessors", [])
    return sum(int(accessors[prim["attributes"]["POSITION"]]["count"])
               for mesh in doc.get("meshes", []) for prim in mesh.get("primitives", []))


def _smi(*args: str) -> str | None:
    """nvidia-smi's output for `args`; None without nvidia-smi or when it fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def gpu_query(fields: str, *, nounits: bool = False) -> str | None:
    """The first GPU's `--query-gpu` fields as nvidia-smi prints them (csv); None without one."""
    out = _smi(f"--query-gpu={fields}", "--format=csv,noheader" + (",nounits" if nounits else ""))
    lines = (out or "").strip().splitlines()
    return lines[0].strip() if lines else None


def nvidia_apps_mib() -> dict[int, float]:
    """pid → used memory (MiB) of each compute process nvidia-smi lists; {} without one."""
    out = _smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits") or ""
    apps: dict[int, float] = {}
    for line in out.strip().splitlines():
        pid, _, mib = (p.strip() for p in line.partition(","))
        if pid.isdigit() and mib.replace(".", "", 1).isdigit():
            apps[int(pid)] = apps.get(int(pid), 0.0) + float(mib)
    return apps


def _job(model: Any, image: Any, texture: int, device: str) -> dict[str, Any]:
    import torch
    from sf3d.utils import resize_foreground

    t0 = time.perf_counter()
    rgba = resize_foreground(image, 0.85)
    t1 = time.perf_counter()
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                if device.startswith("cuda") else nullcontext())
    with torch.no_grad(), autocast:
        mesh, _ = model.run_image(rgba, bake_resolution=texture, remesh="none", vertex_count=-1,
                                  estimate_illumination=False)
    t2 = time.perf_counter()
    glb = mesh.export(file_type="glb", include_normals=True)
    t3 = time.perf_counter()
    vertices = glb_vertices(glb)
    if vertices == 0:
        raise SystemExit(f"an empty GLB ({len(mesh.vertices)} vertices in the mesh)")
    return {"total_s": t3 - t0, "resize_foreground_s": t1 - t0, "run_image_s": t2 - t1,
            "export_glb_s": t3 - t2, "vertices": vertices, "mesh_vertices": len(mesh.vertices),
            "glb_bytes": len(glb)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--texture", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    t0 = time.perf_counter()
    sys.path.insert(0, args.src)
    import torch
    from PIL import Image
    from sf3d.system import SF3D

    from tests.upstream.sphere_sf3d import install_sphere

    model = SF3D.from_pretrained(args.checkpoint, "config.yaml", "model.safetensors")
    model.to(args.device)
    model.eval()
    model.isosurface_helper.all_edges  # noqa: B018 — as hub3d's load does, not in the first job
    install_sphere(model)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    image = Image.open(args.image).convert("RGBA")
    first = _job(model, image, args.texture, args.device)
    warm = [_job(model, image, args.texture, args.device) for _ in range(args.reps)]
    out: dict[str, Any] = {
        "load_s": load_s, "first": first, "warm": warm, "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    if cuda:
        gib = 1024**3
        apps = nvidia_apps_mib()
        out["cuda"] = {
            "name": torch.cuda.get_device_name(), "torch_cuda": torch.version.cuda,
            "allocated_gib": torch.cuda.memory_allocated() / gib,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / gib,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / gib,
            # nvidia-smi's figure for this process (pids can differ inside a container: then
            # every compute process, which on a lent card is this one)
            "nvidia_smi_gb": (apps.get(os.getpid(), sum(apps.values())) / 1024) if apps else None,
            "nvidia_smi_matched_pid": os.getpid() in apps,
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
