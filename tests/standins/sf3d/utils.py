"""Stand-in for sf3d/utils.py of Stability-AI/stable-fast-3d at ff21fc4.

`get_device()` and `resize_foreground(image, ratio, out_size=None)` with upstream's signatures
and observable behaviour (RGBA only; an empty alpha fails with the assertion "Empty mask!").
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from sf3d._standin import record


def get_device() -> str:
    # Upstream: SF3D_USE_CPU=1 → cpu, else cuda > mps > cpu; the stand-in has no GPU path.
    return "cpu" if os.environ.get("SF3D_USE_CPU", "0") == "1" else "cpu"


def resize_foreground(image: Image.Image | np.ndarray, ratio: float,
                      out_size: tuple[int, int] | None = None) -> Image.Image:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, mode="RGBA")
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[:, :, 3] > 0.5
    assert alpha.sum() > 0, "Empty mask!"
    ys, xs = np.nonzero(alpha)
    side = max(ys.max() - ys.min(), xs.max() - xs.min()) / ratio
    cy, cx = (ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2
    box = (int(cx - side / 2), int(cy - side / 2), int(cx - side / 2) + int(side),
           int(cy - side / 2) + int(side))
    record("resize_foreground", ratio=ratio, size=list(image.size), box=list(box))
    out = image.crop(box)  # PIL pads outside the image with transparent black
    return out.resize(out_size) if out_size is not None else out
