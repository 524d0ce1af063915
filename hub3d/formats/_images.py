"""Texture images written into packages (USDZ, OBJ zip): JPEG stays JPEG, the rest is PNG."""

from __future__ import annotations

import io

from PIL import Image, JpegImagePlugin

__all__ = ["encode_like_source", "suffix_for"]


def suffix_for(image: Image.Image) -> str:
    """`.jpg` for a JPEG-sourced RGB/grey image (re-encoding it as PNG only makes it larger)."""
    return ".jpg" if image.format == "JPEG" and image.mode in ("RGB", "L") else ".png"


def encode_like_source(image: Image.Image, name: str) -> bytes:
    """`image` encoded for a file called `name` (.jpg/.jpeg or .png)."""
    buf = io.BytesIO()
    if name.lower().endswith((".jpg", ".jpeg")):
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        # The source's own quantisation tables when it was decoded from a JPEG: no extra loss
        # from a second, different quantisation.
        if isinstance(rgb, JpegImagePlugin.JpegImageFile):
            rgb.save(buf, format="JPEG", quality="keep")
        else:
            rgb.save(buf, format="JPEG", quality=95)
    else:
        keep = image if image.mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGBA")
        keep.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
