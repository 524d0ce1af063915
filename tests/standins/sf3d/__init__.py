"""Stand-in for the `sf3d` package of Stability-AI/stable-fast-3d at ff21fc4 (see system.py)."""
