"""The real SF3D source as test data: extracted from ../shared/upstream at test time, with the
tetrahedral grid the archive lacks generated in the layout upstream reads."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _upstream_dir() -> Path:
    """HUB3D_UPSTREAM_DIR when set; else shared/upstream beside the checkout (as CI lays it out),
    or inside it (a copy of the tree carried to a machine of its own)."""
    if os.environ.get("HUB3D_UPSTREAM_DIR"):
        return Path(os.environ["HUB3D_UPSTREAM_DIR"]).resolve()
    inside = REPO / "shared" / "upstream"
    beside = REPO.parent / "shared" / "upstream"
    return inside if inside.is_dir() and not beside.is_dir() else beside


UPSTREAM = _upstream_dir()
SF3D_ARCHIVE = UPSTREAM / "stable-fast-3d-ff21fc4.tar.gz"
SF3D_CONFIG = UPSTREAM / "stable-fast-3d-config.yaml"
FULL_RESOLUTION = 160  # isosurface_resolution of the published config
# Upstream's real load/tets/160_tets.npz is about a Kuhn split of 80³ cubes (531,441 vertices,
# 3,072,000 tets); a 160³ one is 8 × larger.
REAL_GRID_CUBES = 80

# Six tetrahedra per cube, all around the cube's main diagonal (corner 0 to corner 7; corner
# bits are x, y, z): a conforming grid, every tet the same volume.
_KUHN = np.array([[0, 1, 3, 7], [0, 3, 2, 7], [0, 2, 6, 7],
                  [0, 6, 4, 7], [0, 4, 5, 7], [0, 5, 1, 7]])


def extract_sf3d(dest: Path) -> Path:
    """The archive's stable-fast-3d/ folder under dest."""
    with tarfile.open(SF3D_ARCHIVE) as tar:
        tar.extractall(dest, filter="data")
    (src,) = [p for p in dest.iterdir() if (p / "sf3d" / "system.py").is_file()]
    return src


def tet_grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float32 N×3 in [0,1]³, indices int64 M×4, positively oriented)."""
    n = resolution + 1
    axis = np.linspace(0.0, 1.0, n, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    i, j, k = (a.reshape(-1) for a in np.meshgrid(*[np.arange(resolution)] * 3, indexing="ij"))
    base = (i * n + j) * n + k
    offsets = np.array([((c >> 0) & 1) * n * n + ((c >> 1) & 1) * n + ((c >> 2) & 1)
                        for c in range(8)])
    corners = base[:, None] + offsets[None, :]  # cubes × 8
    tets = corners[:, _KUHN].reshape(-1, 4)
    p = vertices[tets[:6]]  # one cube's six tets give every orientation there is
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    flip = np.tile(vol < 0, len(tets) // 6)
    tets[flip] = tets[flip][:, [0, 2, 1, 3]]
    return vertices, tets.astype(np.int64)


def write_tets(src: Path, resolution: int, cubes: int | None = None) -> Path:
    """load/tets/<resolution>_tets.npz, as SF3D's MarchingTetrahedraHelper reads it: a grid of
    resolution³ cubes, or cubes³ (REAL_GRID_CUBES: about the size of upstream's real file)."""
    path = src / "load" / "tets" / f"{resolution}_tets.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        vertices, indices = tet_grid(cubes or resolution)
        np.savez(path, vertices=vertices, indices=indices)
    return path
