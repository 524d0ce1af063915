"""The method behind the `inflate` backend (CPU, deterministic, weight-free).

Classical silhouette inflation, not a learned model: background removal → object scaled by
`foreground_ratio` onto a square canvas → inflated closed surface (mesh.py) → the photo as
the texture of both sides (or vertex colours) → GLB; `ply` writes 3D Gaussian splats.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageStat

from hub3d import formats
from hub3d.errors import NoObjectDetected
from hub3d.imaging.background import extract_foreground, resize_foreground
from hub3d.imaging.preview import render_front, vertex_normals
from hub3d.models.inflate.backend import InflateParams
from hub3d.models.inflate.glb import write_glb
from hub3d.models.inflate.mesh import InflatedMesh, grid_side_for, inflate_mask
from hub3d.models.inflate.splats import splat_ply_bytes

__all__ = ["InflateResult", "inflate_image", "preview_png"]

PREVIEW_SIDE = 256


@dataclass
class InflateResult:
    data: bytes
    media_type: str
    suffix: str
    metadata: dict[str, Any] = field(default_factory=dict)
    _shaded: tuple[InflatedMesh, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def preview(self, side: int = PREVIEW_SIDE) -> Image.Image:
        """The front thumbnail; rendered on demand, as no client waits for it."""
        assert self._shaded is not None
        mesh, colors, normals = self._shaded
        return render_front(mesh.vertices, mesh.faces, colors, side, normals)


def _texture(canvas: Image.Image, side: int) -> Image.Image:
    """RGB texture; the background takes the object's mean colour so rim texels do not bleed."""
    # A power of two (viewers can mipmap it): the canvas size rounded up, within the limit.
    side = min(2 ** int(np.log2(side)), 2 ** int(np.ceil(np.log2(canvas.width))))
    if canvas.width != side:
        canvas = canvas.resize((side, side), Image.Resampling.BILINEAR)
    alpha = canvas.getchannel("A")
    rgb = canvas.convert("RGB")
    mean = ImageStat.Stat(rgb, alpha.point(lambda a: 255 if a > 127 else 0)).mean
    has_object = np.asarray(alpha).max() > 127
    fill = tuple(int(c) for c in mean) if has_object else (128, 128, 128)
    return Image.composite(rgb, Image.new("RGB", rgb.size, fill), alpha)


def _vertex_colors(texture: Image.Image, mesh: InflatedMesh) -> np.ndarray:
    small = np.asarray(texture.resize((mesh.grid_side, mesh.grid_side), Image.Resampling.BOX))
    rgb = small[mesh.pixel[:, 0], mesh.pixel[:, 1]]
    return np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)])


def _glb(mesh: InflatedMesh, texture: Image.Image, colors: np.ndarray,
         normals: np.ndarray, with_texture: bool) -> bytes:
    if with_texture:
        return write_glb(mesh.vertices, mesh.faces, normals, uv=mesh.uv, texture=texture)
    return write_glb(mesh.vertices, mesh.faces, normals, colors=colors)


def _mesh_stats(mesh: InflatedMesh) -> dict[str, Any]:
    """Counts, bounds, and a real watertightness check: every edge shared by exactly 2 faces."""
    f = mesh.faces
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    keys = np.sort(np.minimum(a, b) * len(mesh.vertices) + np.maximum(a, b))
    paired = len(keys) % 2 == 0 and bool((keys[0::2] == keys[1::2]).all())
    watertight = paired and bool((keys[2::2] != keys[1:-1:2]).all())
    return {"vertices": int(len(mesh.vertices)), "faces": int(len(f)),
            "watertight": watertight, "grid": mesh.grid_side,
            "bounds": [mesh.vertices.min(0).round(4).tolist(),
                       mesh.vertices.max(0).round(4).tolist()]}


def inflate_image(image: Image.Image, params: InflateParams, mask: Image.Image | None = None,
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
    colors = _vertex_colors(texture, mesh)
    normals = vertex_normals(mesh.vertices, mesh.faces)
    report("exporting")
    fmt = formats.get(params.output_format)
    if fmt.name == "ply":
        data = splat_ply_bytes(mesh, colors)
    elif fmt.name == "glb":
        data = _glb(mesh, texture, colors, normals, params.with_texture)
    else:  # the control plane makes every other format from these two
        raise ValueError(f"inflate writes glb and ply, not {fmt.name}")
    media, suffix = fmt.media_type, fmt.suffix
    notes = list(fg.notes)
    metadata = {
        "method": "silhouette inflation (classical, weight-free)",
        "background_removal": fg.method, "notes": notes, "mesh": _mesh_stats(mesh),
        "texture": {"size": list(texture.size)} if params.with_texture and suffix == ".glb"
        else None,
    }
    return InflateResult(data, media, suffix, metadata, (mesh, colors, normals))


def preview_png(result: InflateResult) -> bytes:
    buf = io.BytesIO()
    result.preview().save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
