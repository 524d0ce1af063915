"""GLBs to convert: the real inflate method's (textured, vertex-coloured) and an SF3D-shaped one.

SF3D's GLB (sf3d/system.py, the texture-baking branch): a UV-unwrapped mesh whose
`trimesh.visual.material.PBRMaterial` carries a baseColorTexture and a normalTexture (RGB
images tagged JPEG) and constant roughness/metallic factors, exported with
`trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=True)`. The sample
here has that shape on a UV sphere with seams, a painted albedo and a bumpy normal map.
"""

from __future__ import annotations

import functools
import io
import json
import struct
from typing import Any

import numpy as np
import trimesh
from PIL import Image

from hub3d.models.inflate import InflateParams
from hub3d.models.inflate.method import inflate_image
from tests.conftest import REPO

__all__ = ["glb_parts", "glb_summary", "inflate_glb", "inflate_ply", "sample_photo",
           "sf3d_like_glb", "uv_sphere"]


def sample_photo(side: int) -> Image.Image:
    return Image.open(REPO / "samples" / "tshirt.png").convert("RGB").resize((side, side))


@functools.cache
def inflate_glb(*, with_texture: bool = True, texture: int = 1024, side: int = 512) -> bytes:
    """The built-in backend's GLB for the sample photo (`side` px, texture up to `texture`)."""
    params = InflateParams(with_texture=with_texture, texture_resolution=texture)
    return inflate_image(sample_photo(side), params).data


def uv_sphere(rows: int = 64, cols: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, uv) of a unit sphere, unwrapped by longitude/latitude.

    The seam column and each pole are split vertices (one UV each), as in an unwrapped mesh;
    one triangle per quad touches a pole, so no triangle is degenerate.
    """
    theta = np.linspace(0.0, np.pi, rows + 1)
    phi = np.linspace(0.0, 2.0 * np.pi, cols + 1)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    vertices = np.stack([np.sin(th) * np.cos(ph), np.cos(th), -np.sin(th) * np.sin(ph)], -1)
    uv = np.stack([ph / (2 * np.pi), 1.0 - th / np.pi], -1)
    idx = np.arange((rows + 1) * (cols + 1)).reshape(rows + 1, cols + 1)
    a, b = idx[:-1, :-1], idx[1:, :-1]
    c, d = idx[1:, 1:], idx[:-1, 1:]
    upper = np.stack([a, b, d], -1)[1:]  # row 0's upper triangle would be degenerate
    lower = np.stack([b, c, d], -1)[:-1]
    faces = np.concatenate([upper.reshape(-1, 3), lower.reshape(-1, 3)])
    used = np.unique(faces)  # each pole row has one vertex more than it has triangles
    remap = np.zeros((rows + 1) * (cols + 1), np.int64)
    remap[used] = np.arange(len(used))
    return vertices.reshape(-1, 3)[used], remap[faces], uv.reshape(-1, 2)[used]


def _textures(side: int) -> tuple[Image.Image, Image.Image]:
    """An albedo (bands and a checker) and a tangent-space normal map of round bumps."""
    u, v = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side))
    checker = ((u * 16).astype(int) + (v * 8).astype(int)) % 2
    albedo = np.stack([0.35 + 0.5 * u, 0.25 + 0.4 * checker, 0.6 - 0.4 * v], -1)
    height = np.sin(u * 2 * np.pi * 12) * np.sin(v * 2 * np.pi * 6)
    gy, gx = np.gradient(height * 0.02 * side)
    normal = np.stack([-gx, gy, np.ones_like(gx)], -1)  # image rows run down: +y is -row
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    base = Image.fromarray((albedo.clip(0, 1) * 255).astype(np.uint8)).convert("RGB")
    bump = Image.fromarray(((normal * 0.5 + 0.5) * 255).astype(np.uint8)).convert("RGB")
    base.format = bump.format = "JPEG"  # as SF3D tags both
    return base, bump


@functools.cache
def inflate_ply(side: int = 256) -> bytes:
    """The built-in backend's 3DGS splat PLY for the sample photo."""
    return inflate_image(sample_photo(side), InflateParams(output_format="ply")).data


@functools.cache
def sf3d_like_glb(texture: int = 1024, rows: int = 96, cols: int = 192) -> bytes:
    vertices, faces, uv = uv_sphere(rows, cols)
    base, bump = _textures(texture)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=base, roughnessFactor=0.62, metallicFactor=0.08, normalTexture=bump)
    mesh = trimesh.Trimesh(vertices=vertices * 0.5, faces=faces,
                           visual=trimesh.visual.texture.TextureVisuals(uv=uv, material=material))
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=True)


def glb_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(JSON, BIN) of a GLB, read straight from its chunks (independent of hub3d's reader)."""
    assert data[:4] == b"glTF"
    (json_len,) = struct.unpack_from("<I", data, 12)
    gltf = json.loads(data[20:20 + json_len])
    return gltf, data[20 + json_len + 8:]


def glb_summary(data: bytes) -> dict[str, Any]:
    """Vertex and triangle counts and each material slot's texture size, from the GLB itself."""
    gltf, blob = glb_parts(data)
    prim = gltf["meshes"][0]["primitives"][0]
    acc = gltf["accessors"]
    sizes = {}
    material = gltf["materials"][prim["material"]]
    slots = {"baseColor": material.get("pbrMetallicRoughness", {}).get("baseColorTexture"),
             "normal": material.get("normalTexture")}
    for slot, ref in slots.items():
        if ref is None:
            continue
        view = gltf["bufferViews"][gltf["images"][gltf["textures"][ref["index"]]["source"]]
                                   ["bufferView"]]
        start = view.get("byteOffset", 0)
        with Image.open(io.BytesIO(blob[start:start + view["byteLength"]])) as img:
            sizes[slot] = img.size
    return {"vertices": acc[prim["attributes"]["POSITION"]]["count"],
            "triangles": acc[prim["indices"]]["count"] // 3, "textures": sizes,
            "colors": "COLOR_0" in prim["attributes"]}
