"""Output formats: each declared once (name, suffix, media type, check, conversion).

One module per format (`glb.py`, `ply.py`, `usdz.py`, `obj.py`), each defining `FORMAT`; the
registry finds them by looking at this package, so adding a format is adding one file.
Importing this package is cheap: format libraries (trimesh, usd-core) load on first use.

    offered(("glb",))                    → ["glb", "obj", "usdz"]
    convert_beside(job_dir / "result.glb", "usdz")   → job_dir / "result.usdz", made once
"""

from __future__ import annotations

from hub3d.formats._beside import convert_beside, target_path
from hub3d.formats._format import Format
from hub3d.formats._registry import (
    all_formats,
    format_of,
    get,
    names,
    offered,
    reload,
    source_for,
)

__all__ = [
    "Format",
    "all_formats",
    "convert_beside",
    "format_of",
    "get",
    "names",
    "offered",
    "reload",
    "source_for",
    "target_path",
]
