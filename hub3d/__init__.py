"""hub3d: serve image-to-3D models from a JupyterHub GPU to your laptop."""

__version__ = "0.1.0"

__all__ = ["__version__"]
