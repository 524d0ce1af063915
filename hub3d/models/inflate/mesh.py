"""Silhouette inflation: a mask becomes a closed, two-sided, rounded surface.

Grid-sample the mask → distance transform → circular height profile (a balloon whose rim meets
the silhouette) → front sheet from the pixel grid, back sheet mirrored, and a thin side wall
along the rim so the surface is closed. Classical shape-from-silhouette, not a learned model.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["InflatedMesh", "grid_side_for", "inflate_mask"]

THICKNESS = 0.3  # full depth at the thickest point, as a fraction of the object's width
RIM = 0.04  # side-wall half height, as a fraction of the thickest point
DEFAULT_GRID = 128


@dataclass
class InflatedMesh:
    vertices: np.ndarray  # (n, 3) float32, y-up, +z towards the viewer, centred, longest side 1
    faces: np.ndarray  # (m, 3) int64, outward winding
    uv: np.ndarray  # (n, 2) float32, OpenGL convention (v up) onto the canvas image
    pixel: np.ndarray  # (n, 2) int, (row, col) of each vertex in the grid, for colours
    grid_side: int
    heights: np.ndarray  # (grid, grid) float32 height field (0 outside), for the preview


def grid_side_for(vertex_count: int, fill: float) -> int:
    """Grid resolution giving roughly `vertex_count` vertices (two sheets over the mask)."""
    if vertex_count <= 0:
        return DEFAULT_GRID
    return int(np.clip(np.sqrt(vertex_count / (2.0 * max(fill, 0.05))), 16, 400))


def _front_faces(idx: np.ndarray) -> np.ndarray:
    """Triangles over every 2×2 block of grid vertices with ≥3 inside, facing +z."""
    a, b = idx[:-1, :-1], idx[:-1, 1:]
    c, d = idx[1:, :-1], idx[1:, 1:]
    va, vb, vc, vd = a >= 0, b >= 0, c >= 0, d >= 0
    parts = []
    full = va & vb & vc & vd
    parts += [np.stack([a[full], c[full], b[full]], 1), np.stack([b[full], c[full], d[full]], 1)]
    for keep, tri in (((va & vb & vc & ~vd), (a, c, b)), ((~va & vb & vc & vd), (b, c, d)),
                      ((va & ~vb & vc & vd), (a, c, d)), ((va & vb & ~vc & vd), (a, d, b))):
        parts.append(np.stack([t[keep] for t in tri], 1))
    return np.concatenate(parts).astype(np.int64)


def _rim_edges(faces: np.ndarray, n: int) -> np.ndarray:
    """Directed front edges used by a single triangle: where the side wall attaches."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = directed.min(1) * n + directed.max(1)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return directed[counts[inverse] == 1]


def _clean_mask(small: np.ndarray) -> np.ndarray:
    """One solid blob without hairlines or diagonal-only joins, so the surface is closed."""
    m = cv2.morphologyEx(small.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=4)
    if n <= 1:
        return np.zeros_like(small, dtype=bool)
    m = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(m, contours, -1, 1, thickness=cv2.FILLED)
    mask = m.astype(bool)
    for _ in range(8):  # fill one pixel of every 2×2 checkerboard (a pinch point)
        a, b, c, d = mask[:-1, :-1], mask[:-1, 1:], mask[1:, :-1], mask[1:, 1:]
        diag = (a & d & ~b & ~c)
        anti = (b & c & ~a & ~d)
        if not (diag.any() or anti.any()):
            break
        mask[:-1, 1:] |= diag
        mask[:-1, :-1] |= anti
    return mask


def inflate_mask(mask: np.ndarray, grid: int) -> InflatedMesh:
    """`mask`: square bool/uint8 array (the foreground canvas alpha > 127)."""
    small = cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA) > 0.5
    small = _clean_mask(small)
    if small.sum() < 9:
        raise ValueError("the object is too small or thin for the mesh grid")
    dist = cv2.distanceTransform(small.astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)
    radius = float(dist.max())
    profile = np.sqrt(np.clip(dist * (2 * radius - dist), 0, None))  # circle: 0 at rim, R inside
    cols = np.nonzero(small.any(0))[0]
    width = float(cols.max() - cols.min() + 1)
    heights = (profile / max(radius, 1e-6)) * (THICKNESS * width / 2)
    heights = cv2.GaussianBlur(heights, (0, 0), 1.0) * small
    rim_height = RIM * THICKNESS * width / 2  # a thin side wall joins the two sheets

    rows, cols_ = np.nonzero(small)
    n = len(rows)
    idx = np.full(small.shape, -1, np.int64)
    idx[rows, cols_] = np.arange(n)
    front = _front_faces(idx)
    rim = _rim_edges(front, n)
    h = np.maximum(heights[rows, cols_], rim_height).astype(np.float32)
    h[np.unique(rim)] = rim_height

    xy = np.stack([cols_ + 0.5, grid - (rows + 0.5)], 1).astype(np.float32)  # y up
    vertices = np.concatenate([np.column_stack([xy, h]), np.column_stack([xy, -h])])
    u, v = rim[:, 0], rim[:, 1]
    walls = np.concatenate([np.stack([v, u, u + n], 1), np.stack([v, u + n, v + n], 1)])
    faces = np.concatenate([front, front[:, ::-1] + n, walls])

    lo, hi = vertices.min(0), vertices.max(0)
    vertices = (vertices - (lo + hi) / 2) / float((hi - lo).max())
    uv = np.stack([(cols_ + 0.5) / grid, 1.0 - (rows + 0.5) / grid], 1).astype(np.float32)
    pixel = np.stack([rows, cols_], 1)
    return InflatedMesh(vertices.astype(np.float32), faces, np.concatenate([uv, uv]),
                        np.concatenate([pixel, pixel]), grid, heights)
