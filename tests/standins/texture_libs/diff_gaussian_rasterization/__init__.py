"""Import name and settings API of the mip-splatting variant of diff_gaussian_rasterization
(autonomousvision/mip-splatting, submodules/diff-gaussian-rasterization), which SAM-3D's
gaussian_render.py calls; for hub3d's texture probe. No rasterizer code."""

from typing import Any, NamedTuple


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    kernel_size: float
    subpixel_offset: Any
    bg: Any
    scale_modifier: float
    viewmatrix: Any
    projmatrix: Any
    sh_degree: int
    campos: Any
    prefiltered: bool
    debug: bool
