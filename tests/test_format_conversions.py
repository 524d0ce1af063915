"""GLB → USDZ, GLB → OBJ zip and GLB tangents, on the inflate method's GLBs and an SF3D-shaped one.

Each result is judged by an outside tool: usd-core's ARKit compliance checker, trimesh reading
the OBJ back, the Khronos glTF validator.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from hub3d.formats import convert_beside
from hub3d.formats.glb import compute_tangents, with_tangents
from tests.format_samples import (
    glb_parts,
    glb_summary,
    inflate_glb,
    sf3d_like_glb,
    uv_sphere,
)
from tests.gltf_check import assert_valid_glb

pxr = pytest.importorskip("pxr", reason="usd-core is part of hub3d[server]")
from pxr import Usd, UsdGeom, UsdShade  # noqa: E402
from pxr.UsdUtils.complianceChecker import ComplianceChecker  # noqa: E402

SAMPLES: dict[str, Callable[[], bytes]] = {
    "inflate_textured": lambda: inflate_glb(),
    "inflate_vertex_colours": lambda: inflate_glb(with_texture=False),
    "sf3d_like": lambda: sf3d_like_glb(),
    "sf3d_like_with_tangents": lambda: with_tangents(sf3d_like_glb()),  # what SF3D will serve
}
TANGENT_WARNING = "MESH_PRIMITIVE_GENERATED_TANGENT_SPACE"


def _result(tmp_path: Path, name: str) -> tuple[Path, bytes]:
    data = SAMPLES[name]()
    path = tmp_path / "result.glb"
    path.write_bytes(data)
    return path, data


def _arkit_findings(path: Path) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        checker = ComplianceChecker(arkit=True)
    checker.CheckCompliance(str(path))
    return checker.GetErrors() + checker.GetFailedChecks()


def _shader_input(stage: Usd.Stage, shader: str, name: str) -> object:
    for prim in stage.Traverse():
        if prim.GetName() == shader:
            return UsdShade.Shader(prim).GetInput(name).Get()
    raise AssertionError(f"no shader {shader} in the stage")


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_usdz_passes_arkit_checker_and_keeps_the_mesh(tmp_path: Path, sample: str) -> None:
    source, data = _result(tmp_path, sample)
    expected = glb_summary(data)
    usdz = convert_beside(source, "usdz")
    assert usdz == tmp_path / "result.usdz"
    assert _arkit_findings(usdz) == []
    stage = Usd.Stage.Open(str(usdz))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert len(meshes) == 1
    mesh = meshes[0]
    assert len(mesh.GetPointsAttr().Get()) == expected["vertices"]
    assert set(mesh.GetFaceVertexCountsAttr().Get()) == {3}
    assert len(mesh.GetFaceVertexIndicesAttr().Get()) == 3 * expected["triangles"]
    assert len(mesh.GetNormalsAttr().Get()) == expected["vertices"]
    with zipfile.ZipFile(usdz) as zf:
        textures = {name.split("/")[-1].split("_")[0]: Image.open(io.BytesIO(zf.read(name))).size
                    for name in zf.namelist() if name.startswith("textures/")}
    assert textures == expected["textures"]
    primvars = UsdGeom.PrimvarsAPI(mesh)
    if expected["textures"]:
        assert len(primvars.GetPrimvar("st").Get()) == expected["vertices"]
    if expected["colors"]:
        colors = np.asarray(primvars.GetPrimvar("displayColor").Get())
        gltf, blob = glb_parts(data)
        acc = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"]]
        view = gltf["bufferViews"][acc["bufferView"]]
        rgba = np.frombuffer(blob, np.uint8, acc["count"] * 4, view.get("byteOffset", 0))
        np.testing.assert_allclose(colors, rgba.reshape(-1, 4)[:, :3] / 255.0, atol=1e-6)


def test_usdz_applies_node_transforms_to_every_mesh(tmp_path: Path) -> None:
    vertices, faces, _ = uv_sphere(8, 16)
    scene = trimesh.Scene()
    moved = trimesh.transformations.translation_matrix([2.0, 0.0, 0.0])
    mirrored = np.diag([-1.0, 2.0, 1.0, 1.0])  # a mirroring scale turns the winding round
    scene.add_geometry(trimesh.Trimesh(vertices, faces, process=False), transform=moved)
    scene.add_geometry(trimesh.Trimesh(vertices, faces, process=False), transform=mirrored)
    source = tmp_path / "result.glb"
    source.write_bytes(trimesh.exchange.gltf.export_glb(scene, include_normals=True))
    usdz = convert_beside(source, "usdz")
    assert _arkit_findings(usdz) == []
    stage = Usd.Stage.Open(str(usdz))
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    bounds = sorted((np.asarray(m.GetPointsAttr().Get()).min(0).round(3).tolist(),
                     np.asarray(m.GetPointsAttr().Get()).max(0).round(3).tolist())
                    for m in meshes)
    assert bounds == [([-1.0, -2.0, -1.0], [1.0, 2.0, 1.0]), ([1.0, -1.0, -1.0], [3.0, 1.0, 1.0])]
    for mesh in meshes:  # normals fit the moved surface, and its winding faces them outwards
        points = np.asarray(mesh.GetPointsAttr().Get(), np.float64)
        tri = np.asarray(mesh.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3)
        normals = np.asarray(mesh.GetNormalsAttr().Get())
        from_winding = trimesh.Trimesh(points, tri, process=False).vertex_normals
        assert np.sum(normals * from_winding, axis=1).min() > 0.9


def test_usdz_maps_the_whole_gltf_material(tmp_path: Path) -> None:
    vertices, faces, uv = uv_sphere(8, 16)
    image = Image.new("RGBA", (64, 32), (200, 100, 50, 128))
    orm = Image.new("RGB", (32, 32), (255, 128, 64))
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=image, baseColorFactor=[255, 255, 255, 200], metallicFactor=0.5,
        roughnessFactor=0.25, metallicRoughnessTexture=orm, occlusionTexture=orm,
        emissiveTexture=orm, emissiveFactor=[1.0, 0.5, 0.0], alphaMode="BLEND", doubleSided=True)
    mesh = trimesh.Trimesh(vertices, faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    source = tmp_path / "result.glb"
    source.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh)))
    usdz = convert_beside(source, "usdz")
    assert _arkit_findings(usdz) == []
    stage = Usd.Stage.Open(str(usdz))
    surface = next(UsdShade.Shader(p) for p in stage.Traverse() if p.GetName() == "PreviewSurface")
    wiring = {i.GetBaseName(): (i.GetConnectedSource()[0].GetPrim().GetName(),
                                i.GetConnectedSource()[1])
              for i in surface.GetInputs() if i.HasConnectedSource()}
    assert wiring == {"diffuseColor": ("baseColorTexture", "rgb"),
                      "opacity": ("baseColorTexture", "a"),
                      "roughness": ("metallicRoughnessTexture", "g"),
                      "metallic": ("metallicRoughnessTexture", "b"),
                      "occlusion": ("occlusionTexture", "r"),
                      "emissiveColor": ("emissiveTexture", "rgb")}
    scale = _shader_input(stage, "metallicRoughnessTexture", "scale")
    np.testing.assert_allclose(tuple(scale), (1.0, 0.25, 0.5, 1.0))
    np.testing.assert_allclose(tuple(_shader_input(stage, "baseColorTexture", "scale")),
                               (1.0, 1.0, 1.0, 200 / 255), atol=1e-6)
    np.testing.assert_allclose(tuple(_shader_input(stage, "emissiveTexture", "scale")),
                               (1.0, 0.5, 0.0, 1.0))
    (geom,) = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert geom.GetDoubleSidedAttr().Get() is True


def test_usdz_carries_sf3d_normal_map_and_factors(tmp_path: Path) -> None:
    source, _ = _result(tmp_path, "sf3d_like")
    stage = Usd.Stage.Open(str(convert_beside(source, "usdz")))
    assert _shader_input(stage, "normalTexture", "sourceColorSpace") == "raw"
    assert tuple(_shader_input(stage, "normalTexture", "scale")) == (2, 2, 2, 1)
    assert tuple(_shader_input(stage, "normalTexture", "bias")) == (-1, -1, -1, 0)
    assert _shader_input(stage, "baseColorTexture", "sourceColorSpace") == "sRGB"
    assert _shader_input(stage, "PreviewSurface", "metallic") == pytest.approx(0.08)
    assert _shader_input(stage, "PreviewSurface", "roughness") == pytest.approx(0.62)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_obj_zip_reloads_with_the_counts_and_texture(tmp_path: Path, sample: str) -> None:
    source, data = _result(tmp_path, sample)
    expected = glb_summary(data)
    archive = convert_beside(source, "obj")
    assert archive == tmp_path / "result.obj.zip"
    with zipfile.ZipFile(archive) as zf:  # the MTL and image only where there is a texture
        textured = {"model.obj", "model.mtl", "material_0.jpeg"}
        assert set(zf.namelist()) == (textured if expected["textures"] else {"model.obj"})
    scene = trimesh.load(archive, file_type="zip", force="scene", process=False)
    (mesh,) = scene.geometry.values()
    assert len(mesh.vertices) == expected["vertices"]
    assert len(mesh.faces) == expected["triangles"]
    if "baseColor" in expected["textures"]:
        assert mesh.visual.material.image.size == expected["textures"]["baseColor"]
        assert len(mesh.visual.uv) == expected["vertices"]
    if expected["colors"]:
        assert mesh.visual.kind == "vertex"
        assert len(np.unique(mesh.visual.vertex_colors[:, :3], axis=0)) > 10


def test_tangents_clear_the_validator_warning_on_the_sf3d_glb() -> None:
    data = sf3d_like_glb()
    before = assert_valid_glb(data)["issues"]["messages"]
    assert TANGENT_WARNING in {m["code"] for m in before}
    out = with_tangents(data)
    issues = assert_valid_glb(out)["issues"]
    assert TANGENT_WARNING not in {m["code"] for m in issues["messages"]}
    assert issues["numWarnings"] == 0
    gltf, blob = glb_parts(out)
    attrs = gltf["meshes"][0]["primitives"][0]["attributes"]

    def read(name: str) -> np.ndarray:
        acc = gltf["accessors"][attrs[name]]
        width = {"VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
        view = gltf["bufferViews"][acc["bufferView"]]
        flat = np.frombuffer(blob, "<f4", acc["count"] * width, view.get("byteOffset", 0))
        return flat.reshape(-1, width)

    tangents, normals, positions = read("TANGENT"), read("NORMAL"), read("POSITION")
    np.testing.assert_allclose(np.linalg.norm(tangents[:, :3], axis=1), 1.0, atol=1e-5)
    assert set(np.unique(tangents[:, 3])) == {1.0}  # a sphere unwrapped without mirroring
    assert np.abs(np.sum(tangents[:, :3] * normals, axis=1)).max() < 1e-4
    # Off the poles, the tangent follows +u: eastwards round the sphere's Y axis (its dP/du).
    east = np.stack([-positions[:, 2], np.zeros(len(positions)), positions[:, 0]], 1)
    east *= -1.0  # the sample's u runs the other way round (z = -sin(theta) sin(phi))
    ring = np.linalg.norm(east, axis=1) > 0.1
    agree = np.sum(tangents[ring, :3] * east[ring], axis=1) / np.linalg.norm(east[ring], axis=1)
    assert agree.min() > 0.99


def test_tangents_leave_a_glb_without_normal_map_as_it_was() -> None:
    data = inflate_glb()
    assert with_tangents(data) == data


def test_tangent_handedness_and_degenerate_uvs() -> None:
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    normals = np.tile([0.0, 0.0, 1.0], (4, 1))
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)  # glTF: v runs down the image
    t = compute_tangents(positions, normals, uv, faces)
    np.testing.assert_allclose(t, np.tile([1, 0, 0, 1], (4, 1)), atol=1e-6)
    mirrored = uv * [-1, 1] + [1, 0]  # u flipped: the tangent turns round, w says so
    t = compute_tangents(positions, normals, mirrored, faces)
    np.testing.assert_allclose(t, np.tile([-1, 0, 0, -1], (4, 1)), atol=1e-6)
    t = compute_tangents(positions, normals, np.zeros_like(uv), faces)  # all UVs the same
    np.testing.assert_allclose(np.linalg.norm(t[:, :3], axis=1), 1.0, atol=1e-6)
    assert np.abs(t[:, :3] @ [0, 0, 1]).max() < 1e-6 and set(t[:, 3]) == {1.0}
