"""3D Gaussian splats in the standard 3DGS PLY layout (as read by common splat viewers)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["SH_C0", "splat_ply_bytes"]

SH_C0 = 0.28209479177387814  # zeroth spherical-harmonic band constant
_FIELDS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
           "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


class _Points(Protocol):
    vertices: np.ndarray
    grid_side: int


def _normals(points: _Points) -> np.ndarray:
    """Outward-ish normals for splats: away from the centre, flattened towards ±z."""
    v = points.vertices.astype(np.float64)
    n = v * np.array([0.3, 0.3, 1.0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return n.astype(np.float32)


def splat_ply_bytes(points: _Points, rgba: np.ndarray, opacity: float = 0.95) -> bytes:
    n = len(points.vertices)
    rows = np.zeros((n, len(_FIELDS)), np.float32)
    rows[:, 0:3] = points.vertices
    rows[:, 3:6] = _normals(points)
    rows[:, 6:9] = (rgba[:, :3].astype(np.float32) / 255.0 - 0.5) / SH_C0
    rows[:, 9] = np.log(opacity / (1 - opacity))  # stored as a logit
    rows[:, 10:13] = np.log(0.7 / points.grid_side)  # about the grid spacing, log-scaled
    rows[:, 13] = 1.0  # identity quaternion (w, x, y, z)
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in _FIELDS) + "end_header\n"
    return header.encode() + rows.astype("<f4").tobytes()
