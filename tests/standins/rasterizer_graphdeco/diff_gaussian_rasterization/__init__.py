"""Import name and settings API of graphdeco-inria's diff_gaussian_rasterization (same import
name as the mip-splatting variant, no kernel_size / subpixel_offset): the package that imports
but fails in SAM-3D's texture baking. For hub3d's texture probe; no rasterizer code."""

from typing import Any, NamedTuple


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: Any
    scale_modifier: float
    viewmatrix: Any
    projmatrix: Any
    sh_degree: int
    campos: Any
    prefiltered: bool
    debug: bool
    antialiasing: bool
