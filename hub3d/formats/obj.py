"""obj: a zip of Wavefront OBJ + MTL + texture images, from a GLB, for tools that want OBJ.

Suffix `.obj.zip`: the downloaded name says what is inside (a bare `.zip` would not, and would
clash with any other zipped format beside the same result); it unzips like any zip. The OBJ
carries positions, normals, UVs and the base-colour texture (map_Kd), or vertex colours as
`v x y z r g b` when there is no texture; OBJ/MTL has no standard slot for glTF's normal,
metallic or roughness maps, so those stay in the GLB/USDZ. Written by trimesh's OBJ exporter.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from hub3d.formats._format import Format

__all__ = ["FORMAT", "MODEL", "check", "convert"]

MODEL, MTL = "model.obj", "model.mtl"  # names inside the zip, whatever the zip is called
_IMAGES = (".png", ".jpg", ".jpeg")


def _scene(source: Path) -> tuple[Any, dict[str, Any]]:
    """The GLB's parts as trimesh meshes with OBJ materials; texture name stems → images."""
    import trimesh

    from hub3d.formats._gltf_parts import read_parts

    scene, images = trimesh.Scene(), {}
    for i, part in enumerate(read_parts(source)):
        image = getattr(part.material, "baseColorTexture", None)
        if part.uv is not None and image is not None:
            name = f"material_{i}"
            # white Kd: MTL multiplies map_Kd by Kd, and trimesh's default Kd is 0.4 grey
            material = trimesh.visual.material.SimpleMaterial(
                image=image, diffuse=(255, 255, 255, 255), name=name)
            visual: Any = trimesh.visual.TextureVisuals(uv=part.uv, material=material)
            images[name] = image
        elif part.colors is not None:
            visual = trimesh.visual.ColorVisuals(vertex_colors=part.colors)
        else:
            visual = None
        mesh = trimesh.Trimesh(vertices=part.vertices, faces=part.faces,
                               vertex_normals=part.normals, visual=visual, process=False)
        scene.add_geometry(mesh, geom_name=f"part_{i}")
    return scene, images


def convert(source: Path, target: Path) -> None:
    from trimesh.exchange.obj import export_obj

    from hub3d.formats._images import encode_like_source

    scene, images = _scene(source)
    # 6 decimals: a micrometre on models measured in metres, and a third faster than 8.
    text, files = export_obj(scene, include_normals=True, include_color=True,
                             include_texture=True, return_texture=True, mtl_name=MTL, digits=6)
    with zipfile.ZipFile(target, "w", compresslevel=3) as zf:  # 6 is 3x slower for 8% less
        zf.writestr(MODEL, text, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in sorted(files.items()):
            if name.lower().endswith(_IMAGES):  # already compressed: stored as they are
                stem = name.rsplit(".", 1)[0]
                if stem in images:  # trimesh saves JPEG at quality 75; keep the source's
                    data = encode_like_source(images[stem], name)
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
            else:
                zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)


def check(path: Path) -> None:
    """Raise ValueError unless `path` is a zip whose OBJ, MTL and textures trimesh reads."""
    import trimesh

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ValueError(f"the zip's member {bad} is corrupt")
            files = {name: zf.read(name) for name in zf.namelist()}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a zip file ({exc})") from None
    if MODEL not in files:
        raise ValueError(f"the zip holds no {MODEL} (it holds {sorted(files)})")
    text = files[MODEL].decode("utf-8", "replace")
    mtl = next((ln.split(None, 1)[1].strip() for ln in text.splitlines()
                if ln.startswith("mtllib ")), None)
    if mtl is not None and mtl not in files:
        raise ValueError(f"{MODEL} names the material library {mtl}, which the zip lacks")
    if mtl is not None:
        for line in files[mtl].decode("utf-8", "replace").splitlines():
            if line.startswith("map_") and line.split()[-1] not in files:
                raise ValueError(f"{mtl} names the texture {line.split()[-1]}, which the zip"
                                 " lacks")
    loaded: Any = trimesh.load(str(path), file_type="zip", force="scene", process=False)
    if not any(len(getattr(g, "faces", ())) for g in loaded.geometry.values()):
        raise ValueError(f"{MODEL} holds no triangles")


FORMAT = Format(
    name="obj",
    suffix=".obj.zip",
    media_type="application/zip",
    description="zip of Wavefront OBJ + MTL + texture: for tools that only read OBJ "
                "(no normal or metal/roughness maps)",
    check=check,
    sources=("glb",),
    convert=convert,
)
