"""Mesh parts → a USD stage of UsdGeom.Mesh prims with UsdPreviewSurface materials.

The glTF metallic-roughness material maps onto UsdPreviewSurface input by input (glTF 2.0 §3.9,
UsdPreviewSurface spec): baseColor → diffuseColor (+ opacity from its alpha for BLEND/MASK),
the metallicRoughness texture's blue/green channels → metallic/roughness, normal → normal
(8-bit data remapped by scale 2, bias -1, as the spec asks), occlusion (red) → occlusion,
emissive → emissiveColor. glTF's factors multiply the texture, which is UsdUVTexture's `scale`.
Vertex colours without a texture become `displayColor`, read into diffuseColor by a primvar
reader. glTF is meters and Y up, so the stage says metersPerUnit 1 and upAxis Y.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hub3d.formats._gltf_parts import Part
from hub3d.formats._images import encode_like_source, suffix_for

__all__ = ["write_stage"]

_RAW, _SRGB = "raw", "sRGB"


def write_stage(parts: list[Part], folder: Path) -> Path:
    """Write `folder/model.usdc` (and its textures under `folder/textures/`); its path."""
    from pxr import Kind, Usd, UsdGeom

    layer = folder / "model.usdc"
    stage = Usd.Stage.CreateNew(str(layer))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/Model")
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root.GetPrim()).SetKind(Kind.Tokens.component)
    UsdGeom.Scope.Define(stage, "/Model/Geom")
    UsdGeom.Scope.Define(stage, "/Model/Materials")
    writer = _Materials(stage, folder)
    used: set[str] = set()
    for part in parts:
        name = _unique(part.name, used)
        mesh = _mesh(stage, f"/Model/Geom/{name}", part)
        writer.bind(mesh.GetPrim(), part, name)
    stage.GetRootLayer().Save()
    return layer


def _unique(name: str, used: set[str]) -> str:
    from pxr import Tf

    base = Tf.MakeValidIdentifier(name or "mesh")
    out, i = base, 1
    while out in used:
        out, i = f"{base}_{i}", i + 1
    used.add(out)
    return out


def _mesh(stage: Any, path: str, part: Part) -> Any:
    from pxr import Sdf, UsdGeom, Vt

    mesh = UsdGeom.Mesh.Define(stage, path)
    points = part.vertices.astype(np.float32)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points))
    mesh.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([points.min(0), points.max(0)])))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(
        np.full(len(part.faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(
        part.faces.astype(np.int32).reshape(-1)))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)  # a render mesh, not a cage
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(part.normals.astype(np.float32)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    material = part.material
    mesh.CreateDoubleSidedAttr(bool(material is not None and material.doubleSided))
    primvars = UsdGeom.PrimvarsAPI(mesh)
    if part.uv is not None:
        primvars.CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                               UsdGeom.Tokens.vertex).Set(
            Vt.Vec2fArray.FromNumpy(part.uv.astype(np.float32)))
    if part.colors is not None:  # glTF vertex colours are linear, as displayColor is
        rgb = part.colors[:, :3].astype(np.float32) / 255.0
        mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(rgb))
    return mesh


class _Materials:
    """One UsdPreviewSurface material per part; each texture image written once."""

    def __init__(self, stage: Any, folder: Path) -> None:
        self.stage, self.folder = stage, folder
        self.files: dict[int, str] = {}  # id(PIL image) → its path inside the package
        self.path: Any = None  # the material being written, its surface and its st reader
        self.surface: Any = None
        self.st: Any = None

    def bind(self, prim: Any, part: Part, name: str) -> None:
        from pxr import Sdf, UsdShade

        material = UsdShade.Material.Define(self.stage, f"/Model/Materials/{name}")
        self.path = material.GetPath()
        surface = self._shader("PreviewSurface", "UsdPreviewSurface")
        material.CreateSurfaceOutput().ConnectToSource(
            surface.CreateOutput("surface", Sdf.ValueTypeNames.Token))
        surface.CreateInput("useSpecularWorkflow", Sdf.ValueTypeNames.Int).Set(0)
        self.surface, self.st = surface, None
        self._fill(part)
        UsdShade.MaterialBindingAPI.Apply(prim).Bind(material)

    def _fill(self, part: Part) -> None:
        from pxr import Gf, Sdf

        mat, f3, f1 = part.material, Sdf.ValueTypeNames.Color3f, Sdf.ValueTypeNames.Float
        base = _factor(getattr(mat, "baseColorFactor", None), 4, 1.0)
        alpha_mode = (getattr(mat, "alphaMode", None) or "OPAQUE").upper()
        textured = part.uv is not None
        image = getattr(mat, "baseColorTexture", None) if textured else None
        if image is not None:
            tex = self._texture("baseColor", image, _SRGB, tuple(base))
            self._connect("diffuseColor", f3, tex, "rgb")
            if alpha_mode != "OPAQUE":
                self._connect("opacity", f1, tex, "a")
        elif part.colors is not None:
            reader = self._shader("displayColorReader", "UsdPrimvarReader_float3")
            reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
            self._connect("diffuseColor", f3, reader, "result", Sdf.ValueTypeNames.Float3)
        else:
            self.surface.CreateInput("diffuseColor", f3).Set(Gf.Vec3f(*base[:3]))
        if alpha_mode != "OPAQUE" and image is None:
            self.surface.CreateInput("opacity", f1).Set(float(base[3]))
        if alpha_mode == "MASK":
            cutoff = getattr(mat, "alphaCutoff", None)
            self.surface.CreateInput("opacityThreshold", f1).Set(
                0.5 if cutoff is None else float(cutoff))
        metallic = _scalar(getattr(mat, "metallicFactor", None), 1.0)  # glTF's defaults
        roughness = _scalar(getattr(mat, "roughnessFactor", None), 1.0)
        image = getattr(mat, "metallicRoughnessTexture", None) if textured else None
        if image is not None:
            tex = self._texture("metallicRoughness", image, _RAW, (1.0, roughness, metallic, 1.0))
            self._connect("roughness", f1, tex, "g")
            self._connect("metallic", f1, tex, "b")
        else:
            self.surface.CreateInput("metallic", f1).Set(metallic)
            self.surface.CreateInput("roughness", f1).Set(roughness)
        self._maps(part)

    def _maps(self, part: Part) -> None:
        from pxr import Gf, Sdf

        mat = part.material
        if part.uv is None or mat is None:
            return
        if mat.normalTexture is not None:
            # glTF's normalTexture.scale is not carried by trimesh: 1, as hub3d's GLBs have.
            tex = self._texture("normal", mat.normalTexture, _RAW, (2.0, 2.0, 2.0, 1.0),
                                bias=(-1.0, -1.0, -1.0, 0.0))
            self._connect("normal", Sdf.ValueTypeNames.Normal3f, tex, "rgb")
        if mat.occlusionTexture is not None:
            tex = self._texture("occlusion", mat.occlusionTexture, _RAW, (1.0, 1.0, 1.0, 1.0))
            self._connect("occlusion", Sdf.ValueTypeNames.Float, tex, "r")
        emissive = _factor(getattr(mat, "emissiveFactor", None), 3, 0.0)
        if mat.emissiveTexture is not None:
            tex = self._texture("emissive", mat.emissiveTexture, _SRGB, (*emissive, 1.0))
            self._connect("emissiveColor", Sdf.ValueTypeNames.Color3f, tex, "rgb")
        elif any(emissive):
            self.surface.CreateInput("emissiveColor", Sdf.ValueTypeNames.Color3f).Set(
                Gf.Vec3f(*emissive))

    def _shader(self, name: str, shader_id: str) -> Any:
        from pxr import UsdShade

        shader = UsdShade.Shader.Define(self.stage, self.path.AppendChild(name))
        shader.CreateIdAttr(shader_id)
        return shader

    def _connect(self, name: str, kind: Any, source: Any, output: str,
                 output_kind: Any = None) -> None:
        from pxr import Sdf

        kinds = {"rgb": Sdf.ValueTypeNames.Float3, "result": Sdf.ValueTypeNames.Float3}
        out = source.CreateOutput(output, output_kind or kinds.get(output,
                                                                    Sdf.ValueTypeNames.Float))
        self.surface.CreateInput(name, kind).ConnectToSource(out)

    def _texture(self, name: str, image: Image.Image, color_space: str,
                 scale: tuple[float, ...], bias: tuple[float, ...] | None = None) -> Any:
        from pxr import Gf, Sdf

        if self.st is None:
            self.st = self._shader("stReader", "UsdPrimvarReader_float2")
            self.st.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
        tex = self._shader(f"{name}Texture", "UsdUVTexture")
        tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(self._file(name, image))
        tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(
            self.st.CreateOutput("result", Sdf.ValueTypeNames.Float2))
        tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set(color_space)
        for wrap in ("wrapS", "wrapT"):
            tex.CreateInput(wrap, Sdf.ValueTypeNames.Token).Set("repeat")  # glTF's default
        if scale != (1.0, 1.0, 1.0, 1.0):
            tex.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*scale))
        if bias is not None:
            tex.CreateInput("bias", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*bias))
        return tex

    def _file(self, name: str, image: Image.Image) -> str:
        """The image written once into textures/ (JPEG stays JPEG, the rest is PNG)."""
        if id(image) not in self.files:
            rel = f"./textures/{name}_{len(self.files)}{suffix_for(image)}"
            (self.folder / "textures").mkdir(exist_ok=True)
            (self.folder / rel).write_bytes(encode_like_source(image, rel))
            self.files[id(image)] = rel
        return self.files[id(image)]


def _factor(value: Any, width: int, default: float) -> list[float]:
    """A glTF colour factor as floats in 0..1 (trimesh keeps some as uint8)."""
    if value is None:
        return [default] * width
    arr = np.asarray(value, np.float64).reshape(-1)[:width]
    if np.asarray(value).dtype == np.uint8:
        arr = arr / 255.0
    return [float(x) for x in arr] + [1.0] * (width - len(arr))


def _scalar(value: Any, default: float) -> float:
    return default if value is None else float(value)
