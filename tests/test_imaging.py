"""Decoding edge cases at hub3d.imaging.decode (the HTTP view: test_hostile_images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub3d.errors import ImageTooLarge, InvalidInput, NoObjectDetected, UnsupportedMedia
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
    with pytest.raises(ImageTooLarge, match="too many pixels: it declares 900,000,000"):
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


def test_limits_name_the_size_and_the_limit() -> None:
    with pytest.raises(ImageTooLarge, match=r"6\.0 MB; the limit is 5 MB"):
        decode_image(b"\0" * 6_000_000, **LIMITS)
    wide = encode(Image.new("1", (8000, 3000)), "PNG")  # under Pillow's own cap, over ours
    with pytest.raises(ImageTooLarge, match="8000×3000 = 24,000,000 pixels; the limit is"):
        decode_image(wide, **LIMITS)
    bomb = encode(Image.new("1", (30000, 30000)), "PNG")  # over Pillow's cap: refused in open
    with pytest.raises(ImageTooLarge, match="declares 900,000,000; the limit is 20,000,000"):
        decode_image(bomb, **LIMITS)
    assert decode_image(wide, max_bytes=5_000_000, max_pixels=30_000_000).image.size == (
        8000, 3000)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_accepted_formats(fmt: str) -> None:
    img = Image.new("RGB", (40, 30), (200, 30, 30))
    decoded = decode_image(encode(img, fmt), **LIMITS)
    assert decoded.format == fmt and decoded.image.size == (40, 30)
    assert decoded.image.mode == "RGB" and decoded.original_size == (40, 30)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX"])
def test_other_readable_formats_are_refused(fmt: str) -> None:
    with pytest.raises(UnsupportedMedia, match="send a PNG, JPEG or WebP"):
        decode_image(encode(Image.new("RGB", (32, 32), "red"), fmt), **LIMITS)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    ramp = Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16))
    arr = np.asarray(decode_image(encode(ramp, "PNG"), **LIMITS).image)[..., 0].astype(int)
    assert arr.min() == 0 and arr.max() == 255 and abs(int(arr[32, 0]) - 128) <= 2


def test_more_modes() -> None:
    la = Image.new("LA", (16, 16), (100, 0))
    la.paste((100, 255), (4, 4, 12, 12))
    out = decode_image(encode(la, "PNG"), **LIMITS).image
    assert out.mode == "RGBA" and out.getpixel((8, 8)) == (100, 100, 100, 255)
    bilevel = decode_image(encode(Image.new("1", (16, 16), 1), "PNG"), **LIMITS).image
    assert bilevel.mode == "RGB" and bilevel.getpixel((3, 3)) == (255, 255, 255)
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    plain = decode_image(encode(pal, "PNG"), **LIMITS).image  # palette, no transparency
    assert plain.mode == "RGB" and plain.getpixel((0, 0)) == (10, 20, 30)
    cut = Image.new("P", (16, 16), 0)
    cut.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    cut.paste(1, (4, 4, 12, 12))
    rgba = decode_image(encode(cut, "PNG", transparency=0), **LIMITS).image
    assert rgba.mode == "RGBA" and rgba.getpixel((0, 0))[3] == 0
    assert rgba.getpixel((8, 8)) == (200, 0, 0, 255)


def test_exif_rotation_moves_the_pixels() -> None:
    img = Image.new("RGB", (60, 30), "white")
    img.paste((255, 0, 0), (0, 0, 20, 30))  # red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: the left edge becomes the top
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95), **LIMITS).image
    assert out.size == (30, 60)
    r, g, _ = out.getpixel((15, 5))
    assert r > 200 and g < 60


def test_animated_gif_uses_frame_zero() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    decoded = decode_image(gif, **LIMITS)
    assert decoded.notes == ["animated GIF with 3 frames: used the first frame"]
    assert decoded.image.getpixel((8, 8))[0] > 200


def test_truncated_files_name_the_problem() -> None:
    photo = Image.effect_noise((256, 256), 60).convert("RGB")
    for fmt in ("PNG", "JPEG"):
        data = encode(photo, fmt)
        with pytest.raises(InvalidInput, match="truncated or corrupt|could not be read") as info:
            decode_image(data[: len(data) // 2], **LIMITS)
        assert not isinstance(info.value, (ImageTooLarge, UnsupportedMedia))
        assert "send a PNG, JPEG or WebP" in str(info.value)


def test_fully_transparent_rgba_has_no_object() -> None:
    clear = decode_image(encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG"), **LIMITS)
    with pytest.raises(NoObjectDetected, match="no object detected"):
        extract_foreground(clear.image)


def test_explicit_mask_wins_and_an_empty_one_is_refused() -> None:
    img = Image.new("RGB", (64, 64), "white")
    mask = Image.new("L", (32, 32), 0)  # a different size: resized onto the image
    mask.paste(255, (0, 0, 16, 16))
    fg = extract_foreground(img, mask)
    assert fg.method == "mask"
    alpha = np.asarray(fg.rgba.getchannel("A")) > 127
    assert alpha[:30, :30].all() and not alpha[34:, 34:].any()
    with pytest.raises(NoObjectDetected):
        extract_foreground(img, Image.new("L", (64, 64), 0))


def test_cluttered_backdrop_uses_grabcut(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    # No rembg model on disk (U2NET_HOME empty): never downloaded, the weight-free path runs.
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.normal(110, 40, (160, 160, 3)).clip(0, 255).astype(np.uint8))
    img.paste((240, 210, 30), (50, 40, 110, 130))
    fg = extract_foreground(img)
    assert fg.method == "grabcut"
    alpha = np.asarray(fg.rgba.getchannel("A")) > 127
    truth = np.zeros_like(alpha)
    truth[40:130, 50:110] = True
    assert (alpha & truth).sum() / (alpha | truth).sum() > 0.85
    assert not any(tmp_path.iterdir())


def test_resize_foreground_square_and_centred() -> None:
    rgba = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    rgba.paste((9, 9, 9, 255), (10, 20, 50, 100))  # 40 wide, 80 tall
    for ratio in (0.5, 0.85, 1.0):
        canvas = resize_foreground(rgba, ratio)
        assert canvas.width == canvas.height == round(80 / ratio)
        ys, xs = np.nonzero(np.asarray(canvas.getchannel("A")) > 127)
        assert (ys.max() - ys.min() + 1) == 80
        assert abs((xs.min() + xs.max()) / 2 - canvas.width / 2) <= 1
    with pytest.raises(NoObjectDetected):
        resize_foreground(Image.new("RGBA", (20, 20)), 0.85)


@pytest.mark.parametrize("fill", ["plain", "noise"])
def test_nothing_to_find_is_no_object(fill: str) -> None:
    rng = np.random.default_rng(0)
    img = (Image.new("RGB", (120, 120), (128, 128, 128)) if fill == "plain" else
           Image.fromarray(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)))
    with pytest.raises(NoObjectDetected, match="no object detected in the image"):
        extract_foreground(img)
