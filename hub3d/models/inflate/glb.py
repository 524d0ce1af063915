"""A minimal binary glTF 2.0 (GLB) writer for one triangle mesh: textured or vertex-coloured.

Written out directly (numpy + json) rather than through trimesh: it is a few milliseconds
instead of tens (no hashing, no default-level PNG re-encode), and byte-for-byte deterministic.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["write_glb"]

_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_FLOAT, _UNSIGNED_BYTE, _UNSIGNED_INT = 5126, 5121, 5125
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071


class _Builder:
    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)  # every view starts 4-byte aligned
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob += data
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, component: int, kind: str, target: int,
                 normalized: bool = False, bounds: bool = False) -> int:
        acc: dict[str, Any] = {"bufferView": self.view(array.tobytes(), target),
                               "componentType": component, "count": int(len(array)),
                               "type": kind}
        if normalized:
            acc["normalized"] = True
        if bounds:  # required for POSITION
            acc["min"] = array.min(0).astype(float).tolist()
            acc["max"] = array.max(0).astype(float).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def write_glb(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, *,
              uv: np.ndarray | None = None, texture: Image.Image | None = None,
              colors: np.ndarray | None = None, jpeg_quality: int = 90,
              name: str = "object") -> bytes:
    """`uv` in OpenGL convention (v up) with an RGB `texture`, or `colors` (n, 4) uint8."""
    b = _Builder()
    attributes = {
        "POSITION": b.accessor(np.ascontiguousarray(vertices, "<f4"), _FLOAT, "VEC3",
                               _ARRAY_BUFFER, bounds=True),
        "NORMAL": b.accessor(np.ascontiguousarray(normals, "<f4"), _FLOAT, "VEC3",
                             _ARRAY_BUFFER),
    }
    material: dict[str, Any] = {"name": name, "pbrMetallicRoughness": {
        "metallicFactor": 0.0, "roughnessFactor": 0.9}}
    extra: dict[str, Any] = {}
    if texture is not None and uv is not None:
        st = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]])  # glTF's v runs down the image
        attributes["TEXCOORD_0"] = b.accessor(np.ascontiguousarray(st, "<f4"), _FLOAT, "VEC2",
                                              _ARRAY_BUFFER)
        buf = io.BytesIO()
        texture.convert("RGB").save(buf, format="JPEG", quality=jpeg_quality)
        image_view = b.view(buf.getvalue())
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
        extra = {
            "images": [{"bufferView": image_view, "mimeType": "image/jpeg"}],
            "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR,
                          "wrapS": _CLAMP_TO_EDGE, "wrapT": _CLAMP_TO_EDGE}],
            "textures": [{"sampler": 0, "source": 0}],
        }
    elif colors is not None:
        attributes["COLOR_0"] = b.accessor(np.ascontiguousarray(colors, np.uint8),
                                           _UNSIGNED_BYTE, "VEC4", _ARRAY_BUFFER,
                                           normalized=True)
    indices = b.accessor(np.ascontiguousarray(faces, "<u4").reshape(-1), _UNSIGNED_INT,
                         "SCALAR", _ELEMENT_ARRAY_BUFFER)
    gltf = {
        "asset": {"version": "2.0", "generator": "hub3d inflate"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}]}],
        "materials": [material], "accessors": b.accessors, "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.blob) + (-len(b.blob) % 4)}], **extra,
    }
    body = json.dumps(gltf, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 4)
    blob = bytes(b.blob) + b"\0" * (-len(b.blob) % 4)
    total = 12 + 8 + len(body) + 8 + len(blob)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(body), b"JSON")
            + body + struct.pack("<I4s", len(blob), b"BIN\0") + blob)
