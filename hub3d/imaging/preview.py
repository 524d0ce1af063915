"""A small shaded thumbnail of a mesh: orthographic, from the front (+z), numpy only.

Each vertex is splatted as a 2×2 square at a resolution where neighbours touch, lit by its
normal, the nearest one (largest z) winning each pixel: a z-buffered point render, upscaled.
Good enough for a ≤256 px thumbnail in a few ms.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["render_front", "vertex_normals"]

_LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])  # upper left
_BACKGROUND = 235


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit length; zero for unused vertices)."""
    v = vertices.astype(np.float32, copy=False)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    e1, e2 = b - a, c - a
    face_n = np.column_stack([e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1],
                              e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
                              e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]])
    idx = faces.ravel()
    normals = np.stack([np.bincount(idx, np.repeat(face_n[:, k], 3), minlength=len(v))
                        for k in range(3)], 1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


def render_front(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                 side: int = 256, normals: np.ndarray | None = None) -> Image.Image:
    """RGB image `side`×`side`: the mesh seen from +z, y up, fitted with a small margin.

    `colors`: (n, 3+) uint8 per vertex. `normals`: optional precomputed vertex normals.
    """
    v = vertices.astype(np.float32, copy=False)
    n = vertex_normals(v, faces) if normals is None else normals
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    extent = max(float((hi - lo).max()), 1e-9)
    # Render where neighbouring vertices land ~1.5 px apart, 2×2 splats, then upscale.
    spacing = float(np.median(np.abs(v[faces[:, 0], :2] - v[faces[:, 1], :2]).max(1)))
    work = int(np.clip(1.5 * extent / max(spacing, 1e-9) / 0.92, 16, side))
    scale = 0.92 * work / extent
    centre = (lo + hi) / 2
    px = ((v[:, 0] - centre[0]) * scale + work / 2).astype(np.int64)
    py = (work / 2 - (v[:, 1] - centre[1]) * scale).astype(np.int64)
    lit = 0.3 + 0.8 * np.clip(n @ _LIGHT.astype(np.float32), 0, 1)
    shaded = np.clip(colors[:, :3] * lit[:, None], 0, 255).astype(np.uint8)

    keep = np.nonzero(n[:, 2] > -0.2)[0]  # back-facing vertices cannot be seen on a closed mesh
    rank = np.empty(len(v), np.int64)
    rank[keep[np.argsort(v[keep, 2], kind="stable")]] = np.arange(len(keep))  # far → near
    ids = np.tile(keep, 4)
    x = np.concatenate([px[keep], px[keep] + 1, px[keep], px[keep] + 1])
    y = np.concatenate([py[keep], py[keep], py[keep] + 1, py[keep] + 1])
    ok = (x >= 0) & (x < work) & (y >= 0) & (y < work)
    ids, flat = ids[ok], y[ok] * work + x[ok]
    order = np.argsort(flat * len(v) + rank[ids], kind="stable")
    flat, ids = flat[order], ids[order]
    nearest = np.ones(len(flat), bool)  # z-buffer: the nearest (last) entry of each pixel
    nearest[:-1] = flat[1:] != flat[:-1]
    image = np.full((work * work, 3), _BACKGROUND, np.uint8)
    image[flat[nearest]] = shaded[ids[nearest]]
    out = Image.fromarray(image.reshape(work, work, 3), "RGB")
    return out if work == side else out.resize((side, side), Image.Resampling.BILINEAR)
