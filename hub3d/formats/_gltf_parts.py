"""A GLB read as flat mesh parts (world-space geometry + its glTF material), for the converters.

Read with trimesh (already a dependency): it decodes every accessor layout, the node hierarchy
and the PBR material into numpy arrays and PIL images, and loads glTF without merging or
reordering vertices, so a part has exactly the GLB's vertices and triangles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Part", "read_parts"]


@dataclass
class Part:
    name: str
    vertices: np.ndarray  # (n, 3) float64, world space (node transforms applied), meters, Y up
    faces: np.ndarray  # (m, 3) int, counter-clockwise seen from the front (glTF's winding)
    normals: np.ndarray  # (n, 3) unit, world space
    uv: np.ndarray | None  # (n, 2), v up the image (OpenGL / USD convention)
    colors: np.ndarray | None  # (n, 4) uint8 RGBA vertex colours (glTF COLOR_0)
    material: Any  # trimesh.visual.material.PBRMaterial, or None


def read_parts(path: Path) -> list[Part]:
    """Every triangle mesh instance of the GLB's scene; ValueError when there is none."""
    import trimesh

    scene: Any = trimesh.load(str(path), file_type="glb", force="scene", process=False)
    parts: list[Part] = []
    for node in scene.graph.nodes_geometry:
        matrix, geometry = scene.graph[node]
        mesh = scene.geometry[geometry]
        if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
            continue  # points and lines have no surface to convert
        parts.append(_part(str(node), mesh, np.asarray(matrix, np.float64)))
    if not parts:
        raise ValueError("the GLB holds no triangle mesh")
    return parts


def _part(name: str, mesh: Any, matrix: np.ndarray) -> Part:
    import trimesh

    vertices = trimesh.transform_points(np.asarray(mesh.vertices, np.float64), matrix)
    linear = matrix[:3, :3]
    normals = np.asarray(mesh.vertex_normals, np.float64) @ np.linalg.inv(linear)  # inverse-T
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    faces = np.asarray(mesh.faces, np.int64)
    if np.linalg.det(linear) < 0:  # a mirroring transform turns the winding inside out
        faces = faces[:, ::-1]
    visual = mesh.visual
    uv = getattr(visual, "uv", None)
    material = getattr(visual, "material", None)
    if material is not None and not isinstance(material, trimesh.visual.material.PBRMaterial):
        material = material.to_pbr()
    colors = None
    if isinstance(visual, trimesh.visual.TextureVisuals):
        colors = visual.vertex_attributes.get("color")
    elif visual.kind == "vertex":
        colors = visual.vertex_colors
    return Part(name=name, vertices=vertices, faces=faces, normals=normals,
                uv=None if uv is None else np.asarray(uv, np.float64),
                colors=None if colors is None else np.asarray(colors, np.uint8),
                material=material)
