"""ply: 3D Gaussian splats in the standard 3DGS PLY layout, as inflate and SAM-3D write them.

Only written natively (nothing converts into it). The check reads the header and, for binary
files, makes sure the body holds exactly the vertices the header declares.
"""

from __future__ import annotations

from pathlib import Path

from hub3d.formats._format import Format

__all__ = ["FORMAT", "check"]

_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
          "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
          "double": 8, "float64": 8}
_MAX_HEADER = 64 * 1024


def check(path: Path) -> None:
    """Raise ValueError unless `path` is a PLY whose binary body matches its header."""
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER)
        end = head.find(b"end_header\n")
        if not head.startswith(b"ply\n") or end < 0:
            raise ValueError("not a PLY file (no 'ply' magic or no end_header line)")
        lines = head[:end].decode("ascii", "replace").splitlines()[1:]
        body = fh.seek(0, 2) - (end + len(b"end_header\n"))
    fmt = next((ln.split()[1] for ln in lines if ln.startswith("format ")), None)
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"the PLY header has no known format line (got {fmt!r})")
    elements: list[tuple[str, int, list[str]]] = []
    for line in lines:
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3:
            elements.append((words[1], int(words[2]), []))
        elif words[:1] == ["property"] and elements:
            elements[-1][2].append(" ".join(words[1:]))
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None or vertex[1] == 0:
        raise ValueError("the PLY declares no vertices")
    names = {p.split()[-1] for p in vertex[2]}
    if not {"x", "y", "z"} <= names:
        raise ValueError("the PLY's vertices have no x, y, z properties")
    if fmt == "ascii" or any(p.startswith("list ") for _, _, props in elements for p in props):
        return  # sizes vary: the header is all that can be checked cheaply
    try:
        expected = sum(n * sum(_SIZES[p.split()[0]] for p in props) for _, n, props in elements)
    except KeyError as exc:
        raise ValueError(f"the PLY uses an unknown property type {exc}") from None
    if body != expected:
        raise ValueError(f"the PLY's header declares {expected} bytes of data but the file holds"
                         f" {body}: it is truncated or corrupt")


FORMAT = Format(
    name="ply",
    suffix=".ply",
    media_type="application/octet-stream",
    description="3D Gaussian splats (3DGS PLY layout): for splat viewers, from models that "
                "write splats",
    check=check,
)
