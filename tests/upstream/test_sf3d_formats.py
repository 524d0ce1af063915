"""The formats users ask for, from the real SF3D code (the tier's reduced model, the sphere
density): a GLB whose normal map has tangents, a USDZ that passes usd-core's ARKit rules, an
OBJ zip that reads back — counts and texture sizes those of the GLB."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import requests
import trimesh

from hub3d import formats
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess
from tests.upstream.test_sf3d_serve import (  # noqa: F401 (sphere: the fixture)
    _disc,
    _done,
    _glb_json,
    _image_sizes,
    _submit,
    sphere,
)

pytestmark = pytest.mark.upstream


@pytest.fixture(scope="module")
def sphere_job(sphere: ServerProcess) -> tuple[ServerProcess, str, bytes]:  # noqa: F811
    job_id = _submit(sphere.url, _disc(), texture_resolution=512)
    _done(sphere.url, job_id)
    glb = requests.get(f"{sphere.url}/job/{job_id}/download", timeout=30).content
    return sphere, job_id, glb


def _triangles(glb: bytes) -> tuple[int, int]:
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", process=False)
    meshes = list(scene.geometry.values())
    return sum(len(m.vertices) for m in meshes), sum(len(m.faces) for m in meshes)


def test_the_glb_carries_tangents_for_its_normal_map(sphere_job: tuple[ServerProcess, str,
                                                                       bytes]) -> None:
    _, _, glb = sphere_job
    report = assert_valid_glb(glb)
    codes = {m["code"] for m in report["issues"]["messages"]}
    assert "MESH_PRIMITIVE_GENERATED_TANGENT_SPACE" not in codes, report["issues"]
    assert report["issues"]["numWarnings"] == 0, report["issues"]
    [primitive] = _glb_json(glb)["meshes"][0]["primitives"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0", "TANGENT"} <= set(primitive["attributes"])


def test_usdz_for_the_mac_passes_the_arkit_rules(sphere_job: tuple[ServerProcess, str, bytes],
                                                 tmp_path: Path) -> None:
    from pxr import Usd, UsdGeom

    srv, job_id, glb = sphere_job
    r = requests.get(f"{srv.url}/job/{job_id}/download?format=usdz", timeout=120)
    assert r.ok and r.headers["content-type"] == "model/vnd.usdz+zip", r.text[:300]
    path = tmp_path / "sphere.usdz"
    path.write_bytes(r.content)
    formats.get("usdz").check(path)  # usd-core's compliance checker with its ARKit rules
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    points = sum(len(m.GetPointsAttr().Get()) for m in meshes)
    faces = sum(len(m.GetFaceVertexCountsAttr().Get()) for m in meshes)
    assert (points, faces) == _triangles(glb)
    with zipfile.ZipFile(io.BytesIO(r.content)) as package:
        images = [n for n in package.namelist() if n.lower().endswith((".png", ".jpg"))]
        from PIL import Image

        sizes = sorted(Image.open(io.BytesIO(package.read(n))).size for n in images)
    assert sizes == sorted(_image_sizes(glb).values())  # baseColor and normal, as baked


def test_obj_zip_reads_back_with_its_texture(sphere_job: tuple[ServerProcess, str, bytes],
                                             tmp_path: Path) -> None:
    srv, job_id, glb = sphere_job
    r = requests.get(f"{srv.url}/job/{job_id}/download?format=obj", timeout=120)
    assert r.ok and r.headers["content-type"] == "application/zip"
    path = tmp_path / "sphere.obj.zip"
    path.write_bytes(r.content)
    formats.get("obj").check(path)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as package:
        package.extractall(folder)
    mesh = trimesh.load(folder / "model.obj", process=False, force="mesh")
    vertices, faces = _triangles(glb)
    assert len(mesh.faces) == faces and len(mesh.vertices) >= vertices - 1
    texture = mesh.visual.material.image
    assert texture is not None and texture.size == _image_sizes(glb)["baseColor"]
