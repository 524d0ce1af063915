"""Decode uploaded images safely: size and pixel limits first, then EXIF rotation and modes."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hub3d.errors import ImageTooLarge, InvalidInput, UnsupportedMedia
from hub3d.fsutil import temp_path_for

__all__ = ["ACCEPTED_FORMATS", "DecodedImage", "decode_image", "save_png", "storable_png"]

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
MIN_SIDE = 8
_SEND = "send a PNG, JPEG or WebP image"


@dataclass
class DecodedImage:
    image: Image.Image  # mode RGB, or RGBA when the alpha channel is really used
    format: str
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own cap; our max_pixels check below is the one that decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # over twice Pillow's cap: refused in open()
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f": it declares {int(found.group(1)):,}" if found else ""
        raise ImageTooLarge(f"image has too many pixels{size}; the limit is {max_pixels:,}"
                            " (resize it first)") from None
    except UnidentifiedImageError:
        raise UnsupportedMedia(
            f"the upload is not an image this server can read; {_SEND}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(f"the image could not be read ({exc}); {_SEND}") from None
    if img.format not in ACCEPTED_FORMATS:
        raise UnsupportedMedia(f"{img.format} images are not accepted; {_SEND}")
    w, h = img.size
    if w * h > max_pixels:  # checked on the header, before any pixel is decoded
        raise ImageTooLarge(f"image is {w}×{h} = {w * h:,} pixels; the limit is {max_pixels:,}"
                            " (resize it first)")
    if min(w, h) < MIN_SIDE:
        raise InvalidInput(f"image is {w}×{h} px; send at least {MIN_SIDE}×{MIN_SIDE}")
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """I;16 / I / F (16-bit PNG, TIFF) → L, scaled by the real range of the data."""
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def _normalise(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _to_8bit(img)
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    if img.mode in ("LA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        alpha = img.getchannel("A")
        if alpha.getextrema()[0] == 255:  # alpha present but unused
            return img.convert("RGB")
        return img
    if img.mode == "CMYK":
        return img.convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Validate and decode an upload; raises InvalidInput / ImageTooLarge / UnsupportedMedia."""
    if not data:
        raise InvalidInput(f"the image is empty (0 bytes); {_SEND}")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data) / 1e6:.1f} MB; the limit is"
                            f" {max_bytes / 1e6:.0f} MB")
    img = _open(data, max_pixels)
    fmt, size, notes = img.format or "?", img.size, []
    frames = int(getattr(img, "n_frames", 1))
    if frames > 1:
        notes.append(f"animated {fmt} with {frames} frames: used the first frame")
        img.seek(0)
    try:
        img.load()
        if img.getexif().get(0x0112, 1) != 1:  # 0x0112: EXIF Orientation
            img = ImageOps.exif_transpose(img)
            notes.append("EXIF orientation applied")
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(f"the image is truncated or corrupt ({exc}); {_SEND}") from None
    return DecodedImage(_normalise(img), fmt, size, notes)


def storable_png(data: bytes, *, max_bytes: int, max_pixels: int) -> bool:
    """True when `data` is a complete single-frame RGB/RGBA PNG that can be stored as it is:
    limits checked on the header and every chunk's CRC verified, without decoding a pixel
    (the worker decodes it anyway). False: use decode_image. Raises like decode_image."""
    if not data or len(data) > max_bytes or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    img = _open(data, max_pixels)
    try:
        if img.mode not in ("RGB", "RGBA") or getattr(img, "n_frames", 1) > 1:
            return False
        if b"eXIf" in data:  # EXIF (maybe an orientation) lives after the pixels: decode it
            return False
        Image.open(io.BytesIO(data)).verify()  # on a fresh handle: verify() must come first
    except Exception as exc:  # truncated, bad CRC, missing IEND: Pillow raises several types
        raise InvalidInput(f"the image is truncated or corrupt ({exc}); {_SEND}") from None
    return True


def save_png(image: Image.Image, path: Path) -> None:
    """Fast PNG (compress_level 1), written under a temp name then renamed into place."""
    tmp = temp_path_for(path)
    try:
        image.save(tmp, format="PNG", compress_level=1)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
