"""glb: binary glTF 2.0, the mesh format every backend writes; and tangents for its normal maps.

A primitive with a normal map and no TANGENT attribute leaves the tangent space to each viewer
(glTF asks them for MikkTSpace; many do something else), so the same file shades differently
from viewer to viewer and the Khronos validator warns MESH_PRIMITIVE_GENERATED_TANGENT_SPACE.
`with_tangents` writes them into the file.

Why numpy and not a MikkTSpace binding: the one on PyPI (pymikktspace 0.3.0, 2021) ships no
wheels and does not build on current Pythons, and no maintained alternative exists; Blender
or a JavaScript toolchain would be a large dependency for one attribute. The method is the
classic one (per-triangle tangents from the UV derivatives, accumulated per vertex weighted by
triangle area, made orthogonal to the normal by Gram-Schmidt, handedness in w), in MikkTSpace's
conventions: the tangent follows +u, the bitangent +v with v pointing up the image (glTF's v
points down, so it is flipped first). It is also how SF3D computes the tangents it bakes its
normal maps with. Vertices whose UVs are degenerate get any unit tangent orthogonal to the
normal, with w = +1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hub3d.formats._format import Format
from hub3d.formats._glb_io import Glb, append_accessor, read_accessor, read_glb, write_glb

__all__ = ["FORMAT", "check", "compute_tangents", "with_tangents"]

_TRIANGLES = 4


def check(path: Path) -> None:
    """Raise ValueError unless `path` is a structurally sound GLB (header, chunks, views)."""
    gltf = read_glb(Path(path).read_bytes()).gltf
    if not gltf.get("meshes"):
        raise ValueError("the GLB holds no mesh")
    try:
        for i, view in enumerate(gltf.get("bufferViews", [])):
            buffer = gltf["buffers"][view.get("buffer", 0)]
            if view.get("byteOffset", 0) + view["byteLength"] > buffer["byteLength"]:
                raise ValueError(f"buffer view {i} runs past the end of its buffer")
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"the GLB's JSON is malformed ({type(exc).__name__}: {exc})") from None


FORMAT = Format(
    name="glb",
    suffix=".glb",
    media_type="model/gltf-binary",
    description="binary glTF 2.0 mesh with its PBR textures; opens in Blender, three.js, "
                "Windows 3D Viewer and most engines",
    check=check,
)


def compute_tangents(positions: np.ndarray, normals: np.ndarray, uv: np.ndarray,
                     faces: np.ndarray) -> np.ndarray:
    """(n, 4) float32 tangents: unit xyz orthogonal to the normal, w = ±1 (handedness).

    `uv` in glTF's convention (v down the image); `faces` (m, 3) vertex indices.
    """
    p = positions.astype(np.float64)
    n = normals.astype(np.float64)
    n_len = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(n_len > 1e-12, n / np.maximum(n_len, 1e-12), [0.0, 0.0, 1.0])
    st = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]).astype(np.float64)
    f = faces.astype(np.int64)
    e1, e2 = p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]]
    d1, d2 = st[f[:, 1]] - st[f[:, 0]], st[f[:, 2]] - st[f[:, 0]]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)[:, None]
    t_face = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv  # dP/du
    b_face = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inv  # dP/dv
    # Weight by triangle area: the direction of each face's tangent, scaled by its size.
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1, keepdims=True)
    t_face = _unit(t_face) * area
    b_face = _unit(b_face) * area
    t = np.zeros_like(p)
    b = np.zeros_like(p)
    for corner in range(3):
        np.add.at(t, f[:, corner], t_face)
        np.add.at(b, f[:, corner], b_face)
    t -= n * np.sum(n * t, axis=1, keepdims=True)  # Gram-Schmidt against the normal
    t_len = np.linalg.norm(t, axis=1)
    bad = t_len < 1e-9
    if bad.any():  # degenerate UVs: any direction orthogonal to the normal
        t[bad] = _any_orthogonal(n[bad])
    t = _unit(t)
    w = np.where(np.sum(np.cross(n, t) * b, axis=1) < 0.0, -1.0, 1.0)
    return np.column_stack([t, w]).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, length, out=np.zeros_like(v), where=length > 1e-12)


def _any_orthogonal(n: np.ndarray) -> np.ndarray:
    """A vector orthogonal to each unit normal: crossed with the axis it is least aligned to."""
    axis = np.zeros_like(n)
    axis[np.arange(len(n)), np.argmin(np.abs(n), axis=1)] = 1.0
    return np.cross(n, axis)


def _needs_tangents(gltf: dict[str, Any], prim: dict[str, Any]) -> int | None:
    """The texCoord set of the primitive's normal map when it needs tangents; else None."""
    attrs = prim.get("attributes", {})
    if "TANGENT" in attrs or "NORMAL" not in attrs or prim.get("mode", _TRIANGLES) != _TRIANGLES:
        return None  # no normals: glTF says flat normals are used and tangents ignored
    if "material" not in prim:
        return None
    normal_texture = gltf["materials"][prim["material"]].get("normalTexture")
    if normal_texture is None:
        return None
    tex_coord = int(normal_texture.get("texCoord", 0))
    return tex_coord if f"TEXCOORD_{tex_coord}" in attrs else None


def with_tangents(glb_bytes: bytes) -> bytes:
    """The GLB with a TANGENT attribute on every normal-mapped primitive that lacks one.

    A GLB with nothing to add comes back as the same bytes. Raises ValueError for a file that
    is not a GLB.
    """
    glb: Glb = read_glb(glb_bytes)
    made: dict[tuple[Any, ...], int] = {}  # primitives sharing their data share the tangents
    for mesh in glb.gltf.get("meshes", []):
        for prim in mesh.get("primitives", []):
            tex_coord = _needs_tangents(glb.gltf, prim)
            if tex_coord is None:
                continue
            attrs = prim["attributes"]
            key = (attrs["POSITION"], attrs["NORMAL"], attrs[f"TEXCOORD_{tex_coord}"],
                   prim.get("indices"))
            if key not in made:
                positions = read_accessor(glb, attrs["POSITION"])
                if "indices" in prim:
                    faces = read_accessor(glb, prim["indices"]).reshape(-1, 3)
                else:
                    faces = np.arange(len(positions) - len(positions) % 3).reshape(-1, 3)
                tangents = compute_tangents(positions, read_accessor(glb, attrs["NORMAL"]),
                                            read_accessor(glb, key[2]), faces)
                made[key] = append_accessor(glb, tangents, "VEC4")
            attrs["TANGENT"] = made[key]
    return write_glb(glb) if made else glb_bytes
