"""Import name of diff_gaussian_rasterization (graphdeco-inria), for hub3d's texture probe."""
