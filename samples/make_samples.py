"""Draw the sample images (deterministic): python samples/make_samples.py"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def tshirt(size: int = 768) -> Image.Image:
    """A striped T-shirt on a soft white studio backdrop, lit from the upper left."""
    s = size / 100
    img = Image.new("RGB", (size, size), (246, 246, 244))
    shape = [(30, 14), (42, 10), (50, 15), (58, 10), (70, 14), (88, 30), (78, 40), (72, 34),
             (72, 88), (28, 88), (28, 34), (22, 40), (12, 30)]
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(x * s, y * s) for x, y in shape], fill=255)
    cloth = Image.new("RGB", (size, size), (32, 86, 160))
    draw = ImageDraw.Draw(cloth)
    for y in range(0, 100, 8):
        draw.rectangle((0, y * s, size, (y + 3) * s), fill=(226, 224, 212))
    draw.ellipse((42 * s, 44 * s, 58 * s, 60 * s), fill=(214, 60, 48))
    shade = Image.linear_gradient("L").rotate(45).resize((size, size))
    cloth = Image.composite(cloth, Image.new("RGB", (size, size), (10, 20, 40)),
                            shade.point(lambda v: 190 + v // 4))
    img.paste(cloth, (0, 0), mask.filter(ImageFilter.GaussianBlur(0.8)))
    collar = ImageDraw.Draw(img)
    collar.arc((42 * s, 6 * s, 58 * s, 22 * s), 0, 180, fill=(20, 50, 110), width=int(1.2 * s))
    return img


if __name__ == "__main__":
    tshirt().save(HERE / "tshirt.png", optimize=True)
    print("written", HERE / "tshirt.png")
