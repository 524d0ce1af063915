"""Draw the small test images (deterministic): python tests/data/make_samples.py

- mug_on_white.png   an object on a plain white backdrop (the border-colour path)
- vase_rgba.png      an RGBA cut-out with real transparency (the alpha path)
- toy_photo.jpg      a photo-like shot: object on a textured, unevenly lit table (GrabCut)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def mug_on_white(size: int = 320) -> Image.Image:
    img = Image.new("RGB", (size, size), (252, 252, 250))
    d = ImageDraw.Draw(img)
    s = size / 100
    d.ellipse((68 * s, 35 * s, 90 * s, 65 * s), outline=(180, 40, 40), width=int(5 * s))  # handle
    d.rounded_rectangle((22 * s, 25 * s, 74 * s, 85 * s), radius=int(6 * s), fill=(200, 48, 44))
    d.rectangle((30 * s, 45 * s, 66 * s, 60 * s), fill=(245, 230, 200))  # label
    return img.filter(ImageFilter.GaussianBlur(0.6))


def vase_rgba(size: int = 256) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size] / size
    # Half-width of a vase profile along its height: a bulb, a neck and a lip.
    half = 0.08 + 0.22 * np.exp(-((yy - 0.62) / 0.2) ** 2) + 0.05 * (yy < 0.18)
    inside = (np.abs(xx - 0.5) < half) & (yy > 0.1) & (yy < 0.92)
    rgb = np.stack([40 + 150 * xx, 90 + 100 * (1 - yy), 160 + 60 * xx], -1)
    rgba = np.dstack([rgb, inside * 255]).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def toy_photo(size: int = 320) -> Image.Image:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size] / size
    wood = 0.5 + 0.5 * np.sin(40 * xx + 6 * np.sin(9 * yy)) * 0.3
    light = 0.55 + 0.45 * (1 - yy) * (0.6 + 0.4 * xx)  # uneven lighting
    table = np.stack([150 * wood, 105 * wood, 60 * wood], -1) * light[..., None] + 60
    table += rng.normal(0, 10, table.shape)
    img = Image.fromarray(table.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    c = size / 100
    d.ellipse((30 * c, 72 * c, 74 * c, 84 * c), fill=(50, 38, 25))  # shadow
    d.ellipse((32 * c, 38 * c, 70 * c, 80 * c), fill=(40, 120, 210))  # body
    d.ellipse((38 * c, 14 * c, 64 * c, 42 * c), fill=(60, 140, 225))  # head
    d.ellipse((44 * c, 23 * c, 48 * c, 27 * c), fill=(10, 10, 10))  # eyes
    d.ellipse((54 * c, 23 * c, 58 * c, 27 * c), fill=(10, 10, 10))
    return img.filter(ImageFilter.GaussianBlur(0.8))


if __name__ == "__main__":
    mug_on_white().save(HERE / "mug_on_white.png", optimize=True)
    vase_rgba().save(HERE / "vase_rgba.png", optimize=True)
    toy_photo().save(HERE / "toy_photo.jpg", quality=88)
    for name in ("mug_on_white.png", "vase_rgba.png", "toy_photo.jpg"):
        print("written", HERE / name)
