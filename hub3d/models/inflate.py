"""`inflate`: the built-in, weight-free backend (CPU, deterministic).

Classical silhouette inflation, not a learned model: background removal → object scaled by
`foreground_ratio` onto a square canvas → inflated closed surface (inflate_mesh) → the photo as
the texture of both sides (or vertex colours) → GLB; `ply` writes 3D Gaussian splats.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import trimesh
from PIL import Image

from hub3d.errors import NoObjectDetected
from hub3d.imaging.background import extract_foreground, resize_foreground
from hub3d.jobs.files import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput, StageReporter
from hub3d.models.inflate_mesh import InflatedMesh, grid_side_for, inflate_mask
from hub3d.models.splats import splat_ply_bytes

__all__ = ["InflateBackend", "InflateResult", "inflate_image"]

GLB, PLY = "model/gltf-binary", "application/octet-stream"
PREVIEW_SIDE = 256


@dataclass
class InflateResult:
    data: bytes
    media_type: str
    suffix: str
    preview: Image.Image
    metadata: dict[str, Any] = field(default_factory=dict)


def _texture(canvas: Image.Image, side: int) -> Image.Image:
    """RGB texture; the background takes the object's mean colour so rim texels do not bleed."""
    arr = np.asarray(canvas).astype(np.float32)
    inside = arr[..., 3] > 127
    mean = arr[inside, :3].mean(0) if inside.any() else np.full(3, 128.0)
    a = arr[..., 3:4] / 255.0
    rgb = Image.fromarray((arr[..., :3] * a + mean * (1 - a)).astype(np.uint8), "RGB")
    side = 2 ** int(np.log2(min(side, rgb.width)))  # power of two: viewers can mipmap it
    return rgb if rgb.width == side else rgb.resize((side, side), Image.Resampling.BILINEAR)


def _vertex_colors(texture: Image.Image, mesh: InflatedMesh) -> np.ndarray:
    small = np.asarray(texture.resize((mesh.grid_side, mesh.grid_side), Image.Resampling.BOX))
    rgb = small[mesh.pixel[:, 0], mesh.pixel[:, 1]]
    return np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)])


def _preview(texture: Image.Image, mesh: InflatedMesh) -> Image.Image:
    """Front view, lit from the upper left: the height field's normals shade the photo."""
    g = mesh.grid_side
    h = mesh.heights
    gy, gx = np.gradient(h)
    normal = np.dstack([-gx, gy, np.ones_like(h)])
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    light = np.array([-0.4, 0.5, 0.77])
    shade = np.clip(0.35 + 0.75 * (normal @ light), 0, 1.2)[..., None]
    color = np.asarray(texture.resize((g, g), Image.Resampling.BOX)).astype(np.float32)
    img = np.where((h > 0)[..., None], np.clip(color * shade, 0, 255), 235.0).astype(np.uint8)
    return Image.fromarray(img, "RGB").resize((PREVIEW_SIDE, PREVIEW_SIDE),
                                              Image.Resampling.BILINEAR)


def _glb(mesh: InflatedMesh, texture: Image.Image, with_texture: bool) -> bytes:
    if with_texture:
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=0.9)
        visual: Any = trimesh.visual.TextureVisuals(uv=mesh.uv, material=material)
    else:
        visual = trimesh.visual.ColorVisuals(vertex_colors=_vertex_colors(texture, mesh))
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, visual=visual, process=False)
    return bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(tm), include_normals=True))


def _mesh_stats(mesh: InflatedMesh) -> dict[str, Any]:
    edges = np.sort(np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]],
                                    mesh.faces[:, [2, 0]]]), 1)
    _, counts = np.unique(edges[:, 0] * len(mesh.vertices) + edges[:, 1], return_counts=True)
    return {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
            "watertight": bool((counts == 2).all()), "grid": mesh.grid_side,
            "bounds": [mesh.vertices.min(0).round(4).tolist(),
                       mesh.vertices.max(0).round(4).tolist()]}


def inflate_image(image: Image.Image, params: GenerateParams, mask: Image.Image | None = None,
                  report: Callable[..., None] | None = None) -> InflateResult:
    """The whole method on one image: callable directly (benchmarks) or from the worker."""
    report = report or (lambda *a, **k: None)
    report("preprocessing")
    fg = extract_foreground(image, mask)
    canvas = resize_foreground(fg.rgba, params.foreground_ratio)
    report("inference")
    alpha = np.asarray(canvas.getchannel("A")) > 127
    grid = grid_side_for(params.vertex_count, float(alpha.mean()))
    try:
        mesh = inflate_mask(alpha, grid)
    except ValueError as exc:
        raise NoObjectDetected(f"no object detected in the image: {exc}") from None
    texture = _texture(canvas, params.texture_resolution)
    report("exporting")
    if params.output_format == "ply":
        data, media, suffix = splat_ply_bytes(mesh, _vertex_colors(texture, mesh)), PLY, ".ply"
    else:
        data, media, suffix = _glb(mesh, texture, params.with_texture), GLB, ".glb"
    metadata = {
        "method": "silhouette inflation (classical, weight-free)",
        "background_removal": fg.method, "notes": fg.notes, "mesh": _mesh_stats(mesh),
        "texture": {"size": list(texture.size)} if params.with_texture and suffix == ".glb"
        else None,
    }
    return InflateResult(data, media, suffix, _preview(texture, mesh), metadata)


class InflateBackend(Backend):
    name = "inflate"
    description = ("Weight-free classical silhouette inflation (CPU): a rounded, closed mesh of"
                   " the object's outline, textured with the photo. Not a learned model.")
    params_model: ClassVar[type[GenerateParams]] = GenerateParams

    def load(self, device: str) -> None:
        self.device = device  # nothing to load: no weights

    def run(self, job: JobInput, report: StageReporter) -> JobOutput:
        with Image.open(job.image_path) as img:
            image = img.convert("RGBA") if img.mode == "RGBA" else img.convert("RGB")
        mask = None
        if job.mask_path is not None:
            with Image.open(job.mask_path) as m:
                mask = m.convert("L")
        result = inflate_image(image, job.params, mask, report)
        path = job.job_dir / f"result{result.suffix}"
        atomic_write_bytes(path, result.data)
        buf = io.BytesIO()
        result.preview.save(buf, format="PNG", compress_level=1)
        atomic_write_bytes(job.job_dir / "preview.png", buf.getvalue())
        return JobOutput(path, result.media_type, result.metadata)
