"""`inflate`: the built-in, weight-free backend (classical silhouette inflation on the CPU).

backend.py  the Backend and its parameters (cheap to import: the control plane imports it)
method.py   the method on one image: foreground → inflated mesh → texture → GLB or PLY
mesh.py     the inflated closed surface of a mask
glb.py      a minimal glTF 2.0 binary writer;  splats.py  3D Gaussian splats as PLY
"""

from hub3d.models.inflate.backend import InflateBackend, InflateParams

__all__ = ["InflateBackend", "InflateParams"]
