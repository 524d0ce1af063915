"""Foreground extraction: mask → real alpha → rembg (model already on disk) → weight-free
segmentation seeded from the image border. Never a blind centre box.

The weight-free step tries a threshold on the distance from the border's colour first, and only
when the border is not one plain colour (or that finds nothing sensible) runs GrabCut seeded
with the border as background: on a plain backdrop both agree (IoU ≈ 0.95 on the sample shirt)
but the threshold costs ~10 ms at 256 px where GrabCut costs ~0.3–1 s on this class of CPU.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hub3d.errors import NoObjectDetected

__all__ = ["Foreground", "extract_foreground", "resize_foreground", "rembg_model_path"]

_WORK_SIDE = 256  # segmentation runs on a copy this size: fast, and plenty for a silhouette
# GrabCut's cost grows with pixels: at 160 px it is ~3× faster than at 256 and its mask agrees
# with the 256 px one to IoU ≥ 0.98 on the test photos.
_GRABCUT_SIDE = 160
_MIN_FRACTION, _MAX_FRACTION = 0.005, 0.97


@dataclass
class Foreground:
    rgba: Image.Image  # alpha = object mask
    method: str  # "mask" | "alpha" | "rembg" | "border_color" | "grabcut"
    notes: list[str] = field(default_factory=list)


def rembg_model_path() -> Path:
    return Path(os.environ.get("U2NET_HOME", "~/.u2net")).expanduser() / "u2net.onnx"


def _min_alpha(rgba: Image.Image) -> int:
    low, _ = rgba.getchannel("A").getextrema()
    return int(low)  # type: ignore[arg-type]  # one band: a (min, max) pair of ints


def _with_alpha(rgb: Image.Image, mask: np.ndarray) -> Image.Image:
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(mask.astype(np.uint8)))
    return rgba


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the biggest blob and fill its holes: one solid object for the mesh."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _border_pixels(img: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate([img[:width].reshape(-1, 3), img[-width:].reshape(-1, 3),
                           img[:, :width].reshape(-1, 3), img[:, -width:].reshape(-1, 3)])


def _border_color_mask(small: np.ndarray, force: bool = False) -> np.ndarray | None:
    """Plain backdrop (studio photo, generated image): distance from the border's colour."""
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = _border_pixels(lab, 3)
    spread = float(np.percentile(np.linalg.norm(border - np.median(border, 0), axis=1), 90))
    if spread > 12.0 and not force:  # the border is not one colour: leave it to GrabCut
        return None
    dist = np.linalg.norm(lab - np.median(border, 0), axis=2)
    mask = (dist > max(18.0, 2.5 * spread)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return _largest_component(mask)


def _grabcut_mask(small: np.ndarray) -> np.ndarray:
    gc = np.full(small.shape[:2], cv2.GC_PR_FGD, np.uint8)
    band = max(2, min(small.shape[:2]) // 40)
    gc[:band], gc[-band:], gc[:, :band], gc[:, -band:] = (cv2.GC_BGD,) * 4
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: same input, same mask
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None,  # type: ignore[call-overload]
                bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    mask = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    return _largest_component(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))


def _rembg(rgb: Image.Image) -> Image.Image | None:
    if not rembg_model_path().is_file():
        return None  # never trigger a 176 MB download from inside a job
    try:
        import rembg  # type: ignore[import-not-found]
    except ImportError:
        return None
    return rembg.remove(rgb, session=_rembg_session()).convert("RGBA")


@functools.lru_cache(maxsize=1)
def _rembg_session() -> object:
    """Loaded once per worker process: building the ONNX session takes seconds."""
    import rembg  # type: ignore[import-not-found]

    return rembg.new_session("u2net")


def _downscale(rgb: Image.Image, side: int) -> np.ndarray:
    scale = min(1.0, side / max(rgb.size))
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return np.asarray(rgb.resize(size, Image.Resampling.BILINEAR))


def _segment(rgb: Image.Image) -> tuple[np.ndarray, str]:
    mask = _border_color_mask(_downscale(rgb, _WORK_SIDE))
    method = "border_color"
    if mask is None or not _MIN_FRACTION < mask.mean() < _MAX_FRACTION:
        mask, method = _grabcut_mask(_downscale(rgb, _GRABCUT_SIDE)), "grabcut"
        if not _MIN_FRACTION < mask.mean() < _MAX_FRACTION:  # GrabCut found nothing usable
            forced = _border_color_mask(_downscale(rgb, _WORK_SIDE), force=True)
            if forced is not None and _MIN_FRACTION < forced.mean() < _MAX_FRACTION:
                mask, method = forced, "border_color"
    full = cv2.resize(mask.astype(np.float32), rgb.size, interpolation=cv2.INTER_LINEAR)
    return (full > 0.5).astype(np.uint8) * 255, method


def extract_foreground(image: Image.Image, mask: Image.Image | None = None) -> Foreground:
    """The object as RGBA (alpha = mask) and which path found it."""
    rgb = image.convert("RGB")
    if mask is not None:
        m = np.asarray(mask.convert("L").resize(rgb.size)) > 127
        fg = Foreground(_with_alpha(rgb, m * 255), "mask")
    elif image.mode == "RGBA" and _min_alpha(image) < 255:
        fg = Foreground(image, "alpha")
    else:
        cut = _rembg(rgb)
        if cut is not None:
            fg = Foreground(cut, "rembg")
        else:
            seg, method = _segment(rgb)
            fg = Foreground(_with_alpha(rgb, seg), method)
    coverage = float(np.asarray(fg.rgba.getchannel("A")).mean() / 255)
    if coverage < _MIN_FRACTION:
        raise NoObjectDetected(
            f"no object detected in the image (background removal by {fg.method} left"
            f" {coverage:.1%} of it); send a photo with the object clearly in view, an RGBA"
            " image with transparency, or a mask")
    if coverage > 0.995 and fg.method in ("border_color", "grabcut"):
        fg.notes.append("the object fills the whole frame: background removal kept everything")
    return fg


def resize_foreground(rgba: Image.Image, ratio: float) -> Image.Image:
    """Square canvas; the object's bounding box scaled so its longer side is `ratio` of it."""
    alpha = np.asarray(rgba.getchannel("A"))
    ys, xs = np.nonzero(alpha > 127)
    if len(xs) == 0:
        raise NoObjectDetected("no object detected in the image: the mask is empty")
    crop = rgba.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    side = max(crop.size)
    canvas_side = max(8, round(side / ratio))
    canvas = Image.new("RGBA", (canvas_side, canvas_side), (0, 0, 0, 0))
    canvas.paste(crop, ((canvas_side - crop.width) // 2, (canvas_side - crop.height) // 2))
    return canvas
