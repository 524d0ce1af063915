"""Decoding edge cases at hub3d.imaging.decode (the HTTP view: test_hostile_images)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hub3d.errors import ImageTooLarge, InvalidInput, UnsupportedMedia
from hub3d.imaging.background import extract_foreground, resize_foreground
from hub3d.imaging.decode import decode_image

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 20_000_000}


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_modes_are_normalised() -> None:
    gray16 = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    decoded = decode_image(encode(gray16, "PNG"), **LIMITS)
    assert decoded.image.mode == "RGB"
    assert np.asarray(decoded.image).max() > 200  # scaled from 16 bits, not clipped to white
    cmyk = decode_image(encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    assert cmyk.image.mode == "RGB" and cmyk.image.getpixel((5, 5))[0] > 200
    pal = Image.new("P", (32, 32), 1)
    pal.info["transparency"] = 0
    assert decode_image(encode(pal, "PNG", transparency=0), **LIMITS).image.mode in ("RGB", "RGBA")
    opaque = decode_image(encode(Image.new("RGBA", (32, 32), (9, 9, 9, 255)), "PNG"), **LIMITS)
    assert opaque.image.mode == "RGB"  # alpha channel present but unused
    clear = Image.new("RGBA", (32, 32), (9, 9, 9, 0))
    assert decode_image(encode(clear, "PNG"), **LIMITS).image.mode == "RGBA"


def test_exif_rotation_and_animation() -> None:
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    decoded = decode_image(encode(img, "JPEG", exif=exif.tobytes()), **LIMITS)
    assert decoded.image.size == (20, 40) and "EXIF orientation applied" in decoded.notes
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert "first frame" in decode_image(gif, **LIMITS).notes[0]


@pytest.mark.parametrize("data,error,words", [
    (b"", InvalidInput, "empty"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", UnsupportedMedia, "png, jpeg"),
    (b"<html><body>hi</body></html>", UnsupportedMedia, "not an image"),
    (b"PK\x03\x04" + b"\0" * 100, UnsupportedMedia, "not an image"),
    (encode(Image.new("RGB", (1, 1)), "PNG"), InvalidInput, "1×1"),
    (encode(Image.new("RGB", (64, 64), "blue"), "PNG")[:-30], InvalidInput, "truncated"),
    (encode(Image.new("RGB", (64, 64), "blue"), "JPEG")[:200], InvalidInput, ""),
    (b"\0" * 6_000_000, ImageTooLarge, "limit"),
])
def test_bad_uploads(data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        decode_image(data, **LIMITS)
    assert words.lower() in str(info.value).lower()


def test_pixel_bomb_refused_from_the_header() -> None:
    # A valid PNG header declaring 30000×30000: refused before a pixel is decoded.
    big = Image.new("1", (30000, 30000))
    data = encode(big, "PNG")
    assert len(data) < 200_000
    with pytest.raises(ImageTooLarge, match="too many pixels"):
        decode_image(data, **LIMITS)


def test_background_chain_paths() -> None:
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((200, 0, 0, 255), (16, 16, 48, 48))
    assert extract_foreground(rgba).method == "alpha"
    plain = Image.new("RGB", (64, 64), "white")
    plain.paste((10, 80, 200), (16, 16, 48, 48))
    fg = extract_foreground(plain)
    assert fg.method == "border_color"
    alpha = np.asarray(fg.rgba.getchannel("A")) > 127
    assert alpha[32, 32] and not alpha[2, 2] and 0.2 < alpha.mean() < 0.3
    canvas = resize_foreground(fg.rgba, 0.5)
    ys, xs = np.nonzero(np.asarray(canvas.getchannel("A")) > 127)
    assert (xs.max() - xs.min() + 1) / canvas.width == pytest.approx(0.5, abs=0.05)
