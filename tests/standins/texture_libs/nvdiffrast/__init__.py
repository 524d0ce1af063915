"""Import name of nvdiffrast (NVlabs), for hub3d's SAM-3D texture probe; no code."""
