"""The function every benchmark path serves: PNG bytes → decode → inflate → GLB bytes.

The same work the hub3d worker does for one job, with no HTTP, queue, process or files.
"""

from __future__ import annotations

from hub3d.imaging.decode import decode_image
from hub3d.models.inflate.backend import InflateParams
from hub3d.models.inflate.method import inflate_image

__all__ = ["infer"]

_PARAMS = InflateParams()
_MAX_BYTES = 25_000_000
_MAX_PIXELS = 40_000_000


def infer(png_bytes: bytes) -> bytes:
    decoded = decode_image(png_bytes, max_bytes=_MAX_BYTES, max_pixels=_MAX_PIXELS)
    return inflate_image(decoded.image, _PARAMS).data
