"""The GLB container: its JSON and binary chunks, accessors read as numpy arrays, data appended.

A GLB is a 12-byte header and two chunks; editing one in place (adding an attribute) keeps
every other byte of the file as it was, which re-exporting through a scene library would not
(it re-encodes textures and renumbers everything). The chunk layout and accessor rules follow
the glTF 2.0 specification, sections 4.4 (GLB) and 3.6 (accessors).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Glb", "append_accessor", "read_accessor", "read_glb", "write_glb"]

_MAGIC, _JSON, _BIN = b"glTF", 0x4E4F534A, 0x004E4942
_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_NORM_MAX = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}
ARRAY_BUFFER = 34962


@dataclass
class Glb:
    gltf: dict[str, Any]
    blob: bytearray  # the BIN chunk (buffer 0); empty when the file has none


def read_glb(data: bytes) -> Glb:
    """Split a GLB into its JSON and BIN chunks; ValueError says what is wrong with it."""
    if len(data) < 20 or data[:4] != _MAGIC:
        raise ValueError("not a GLB file (it does not start with the 'glTF' magic)")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise ValueError(f"GLB version {version}, not 2")
    if length != len(data):
        raise ValueError(f"the GLB header says {length} bytes but the file has {len(data)}:"
                         " it is truncated or has trailing bytes")
    chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
    if chunk_type != _JSON or 20 + chunk_len > len(data):
        raise ValueError("the GLB's first chunk is not a complete JSON chunk")
    try:
        gltf = json.loads(data[20:20 + chunk_len])
    except ValueError as exc:
        raise ValueError(f"the GLB's JSON chunk does not parse: {exc}") from None
    if not isinstance(gltf, dict) or str(gltf.get("asset", {}).get("version", "")) != "2.0":
        raise ValueError("the GLB's JSON has no asset.version 2.0")
    blob = bytearray()
    offset = 20 + chunk_len
    if offset + 8 <= len(data):
        bin_len, bin_type = struct.unpack_from("<II", data, offset)
        if bin_type != _BIN or offset + 8 + bin_len > len(data):
            raise ValueError("the GLB's second chunk is not a complete BIN chunk")
        blob = bytearray(data[offset + 8:offset + 8 + bin_len])
    buffers = gltf.get("buffers", [])
    if buffers and "uri" not in buffers[0] and buffers[0].get("byteLength", 0) > len(blob):
        raise ValueError(f"buffer 0 declares {buffers[0]['byteLength']} bytes but the BIN chunk"
                         f" holds {len(blob)}")
    return Glb(gltf, blob)


def write_glb(glb: Glb) -> bytes:
    body = json.dumps(glb.gltf, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 4)  # the JSON chunk is padded with spaces, BIN with zeros
    blob = bytes(glb.blob) + b"\0" * (-len(glb.blob) % 4)
    chunks = struct.pack("<II", len(body), _JSON) + body
    if blob:
        chunks += struct.pack("<II", len(blob), _BIN) + blob
    return struct.pack("<4sII", _MAGIC, 2, 12 + len(chunks)) + chunks


def read_accessor(glb: Glb, index: int) -> np.ndarray:
    """Accessor `index` as an (count, width) array (count,) for SCALAR; normalized → float."""
    acc = glb.gltf["accessors"][index]
    if "sparse" in acc:
        raise ValueError(f"accessor {index} is sparse, which is not read here")
    kind, ctype, count = acc["type"], acc["componentType"], int(acc["count"])
    if kind not in _WIDTH or ctype not in _DTYPES:
        raise ValueError(f"accessor {index} has an unsupported layout ({kind}, {ctype})")
    width, dtype = _WIDTH[kind], np.dtype(_DTYPES[ctype])
    if "bufferView" not in acc:
        out = np.zeros((count, width), dtype)
    else:
        view = glb.gltf["bufferViews"][acc["bufferView"]]
        if view.get("buffer", 0) != 0 or "uri" in glb.gltf["buffers"][0]:
            raise ValueError(f"accessor {index} is not stored in the GLB's BIN chunk")
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride") or width * dtype.itemsize
        end = start + (count - 1) * stride + width * dtype.itemsize if count else start
        if end > view.get("byteOffset", 0) + view["byteLength"] or end > len(glb.blob):
            raise ValueError(f"accessor {index} runs past the end of its buffer view")
        out = np.ndarray((count, width), dtype, buffer=glb.blob, offset=start,
                         strides=(stride, dtype.itemsize)).copy()
    if acc.get("normalized"):
        out = np.maximum(out.astype(np.float64) / _NORM_MAX[ctype], -1.0)
    return out[:, 0] if kind == "SCALAR" else out


def append_accessor(glb: Glb, array: np.ndarray, kind: str) -> int:
    """Append a float32 vertex attribute to buffer 0 (a new view and accessor); its index."""
    data = np.ascontiguousarray(array, "<f4").tobytes()
    glb.blob += b"\0" * (-len(glb.blob) % 4)  # views start 4-byte aligned
    views = glb.gltf.setdefault("bufferViews", [])
    views.append({"buffer": 0, "byteOffset": len(glb.blob), "byteLength": len(data),
                  "target": ARRAY_BUFFER})
    glb.blob += data
    accessors = glb.gltf.setdefault("accessors", [])
    accessors.append({"bufferView": len(views) - 1, "componentType": 5126,
                      "count": int(len(array)), "type": kind})
    buffers = glb.gltf.setdefault("buffers", [{}])
    buffers[0]["byteLength"] = len(glb.blob)
    return len(accessors) - 1
