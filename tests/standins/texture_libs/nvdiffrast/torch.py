"""Import name of nvdiffrast.torch, for hub3d's SAM-3D texture probe; no code."""
