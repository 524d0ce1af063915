"""The inflate backend called directly: GLBs pass the Khronos validator and look like the object."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from hub3d.errors import NoObjectDetected
from hub3d.models.base import JobInput
from hub3d.models.inflate import InflateBackend, InflateParams
from hub3d.models.inflate.method import inflate_image
from tests.conftest import REPO
from tests.gltf_check import assert_valid_glb

DATA = REPO / "tests" / "data"


def shirt() -> Image.Image:
    return Image.open(REPO / "samples" / "tshirt.png").convert("RGB").resize((512, 512))


def sample(name: str) -> Callable[[], Image.Image]:
    """A committed sample from tests/data (drawn by tests/data/make_samples.py)."""
    def make() -> Image.Image:
        with Image.open(DATA / name) as img:
            return img.convert("RGBA") if img.mode == "RGBA" else img.convert("RGB")
    make.__name__ = name
    return make


def glb_json(data: bytes) -> dict:
    assert data[:4] == b"glTF"
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20:20 + length])


def rgba_disc() -> Image.Image:
    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((40, 20, 260, 180), fill=(30, 160, 60, 255))
    return img


def noisy_photo() -> Image.Image:
    """A textured backdrop (not one colour): the GrabCut path."""
    rng = np.random.default_rng(0)
    bg = (rng.normal(120, 35, (256, 256, 3)).clip(0, 255)).astype(np.uint8)
    img = Image.fromarray(bg)
    ImageDraw.Draw(img).rectangle((70, 50, 190, 210), fill=(230, 200, 20))
    return img


def load(data: bytes) -> trimesh.Trimesh:
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    return next(iter(scene.geometry.values()))


@pytest.mark.parametrize("make,method", [
    (shirt, "border_color"), (rgba_disc, "alpha"), (noisy_photo, "grabcut"),
    (sample("mug_on_white.png"), "border_color"), (sample("vase_rgba.png"), "alpha"),
    (sample("toy_photo.jpg"), "grabcut"),
])
def test_textured_glb_is_valid_closed_and_unit_sized(make: Callable[[], Image.Image],
                                                     method: str) -> None:
    result = inflate_image(make(), InflateParams())
    assert result.metadata["background_removal"] == method
    report = assert_valid_glb(result.data)
    assert report["issues"]["numWarnings"] == 0
    mesh = load(result.data)
    assert len(mesh.faces) > 1000 and mesh.is_watertight and mesh.volume > 0
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.material.baseColorTexture.size[0] >= 64
    lo, hi = mesh.bounds
    assert np.allclose((lo + hi) / 2, 0, atol=1e-3)  # centred
    assert max(hi - lo) == pytest.approx(1.0, abs=1e-3)  # unit-sized
    depth, width = hi[2] - lo[2], hi[0] - lo[0]
    assert 0.1 * width < depth < 0.5 * width  # sensible thickness, facing +z
    meta = result.metadata
    assert meta["mesh"]["watertight"] and meta["mesh"]["faces"] == len(mesh.faces)
    assert meta["texture"]["size"] == list(mesh.visual.material.baseColorTexture.size)
    assert result.preview().size == (256, 256)


def test_shirt_is_upright_and_textured_from_the_photo() -> None:
    result = inflate_image(shirt(), InflateParams())
    mesh = load(result.data)
    lo, hi = mesh.bounds
    assert hi[1] - lo[1] > 0.8  # the shirt is taller than 0.8 of its longest side: y is up
    # the sleeves (wide) are near the top: y-up means the widest row is in the upper half
    top = mesh.vertices[mesh.vertices[:, 1] > 0.2]
    bottom = mesh.vertices[mesh.vertices[:, 1] < -0.2]
    assert np.ptp(top[:, 0]) > np.ptp(bottom[:, 0]) + 0.2
    tex = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")).astype(int)
    blue = (tex[..., 2] > 120) & (tex[..., 0] < 80)
    assert blue.mean() > 0.2  # the stripes of the photo are in the texture


def test_vertex_colours_without_texture() -> None:
    result = inflate_image(shirt(), InflateParams(with_texture=False))
    assert_valid_glb(result.data)
    gltf = glb_json(result.data)
    assert "images" not in gltf and "COLOR_0" in gltf["meshes"][0]["primitives"][0]["attributes"]
    assert gltf["materials"][0]["pbrMetallicRoughness"]["metallicFactor"] == 0  # not dark metal
    assert result.metadata["texture"] is None
    mesh = load(result.data)
    colors = mesh.visual.vertex_attributes["color"]
    assert len(colors) == len(mesh.vertices) and mesh.is_watertight
    assert len(np.unique(colors[:, :3], axis=0)) > 10


def test_texture_resolution_is_a_limit() -> None:
    result = inflate_image(shirt(), InflateParams(texture_resolution=200))
    assert result.metadata["texture"]["size"] == [128, 128]  # power of two, within the limit
    assert_valid_glb(result.data)


@pytest.mark.parametrize("make", [shirt, sample("vase_rgba.png"), sample("toy_photo.jpg")])
def test_ply_has_every_3dgs_field(make: Callable[[], Image.Image]) -> None:
    result = inflate_image(make(), InflateParams(output_format="ply"))
    head, _, body = result.data.partition(b"end_header\n")
    props = [line.split()[-1] for line in head.decode().splitlines() if line.startswith("property")]
    assert props == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    n = int(head.decode().split("element vertex ")[1].split()[0])
    rows = np.frombuffer(body, "<f4").reshape(n, len(props))
    assert np.isfinite(rows).all() and np.abs(rows[:, :3]).max() <= 0.5 + 1e-4
    assert np.allclose(np.linalg.norm(rows[:, 13:17], axis=1), 1)
    assert (rows[:, 10:13] < 0).all()  # log scales of small splats
    assert 0 < 1 / (1 + np.exp(-rows[0, 9])) < 1  # opacity stored as a logit
    rgb = rows[:, 6:9] * 0.28209479177387814 + 0.5
    assert rgb.min() >= -1e-4 and rgb.max() <= 1 + 1e-4 and rgb.std() > 0.05
    points = trimesh.load(io.BytesIO(result.data), file_type="ply")
    assert len(points.vertices) == n


def test_vertex_count_and_foreground_ratio_are_respected() -> None:
    few = inflate_image(shirt(), InflateParams(vertex_count=2000)).metadata["mesh"]["vertices"]
    many = inflate_image(shirt(), InflateParams(vertex_count=30000)).metadata["mesh"]["vertices"]
    assert 1000 < few < 4000 and 20000 < many < 45000
    # At the default grid, a larger object in the frame covers more grid cells.
    small = inflate_image(shirt(), InflateParams(foreground_ratio=0.5)).metadata["mesh"]
    big = inflate_image(shirt(), InflateParams(foreground_ratio=1.0)).metadata["mesh"]
    assert small["grid"] == big["grid"] and big["vertices"] > 2.5 * small["vertices"]


@pytest.mark.parametrize("make", [shirt, sample("toy_photo.jpg")])
def test_deterministic(make: Callable[[], Image.Image]) -> None:
    for params in (InflateParams(), InflateParams(output_format="ply")):
        assert inflate_image(make(), params).data == inflate_image(make(), params).data


def test_mask_and_empty_object() -> None:
    mask = Image.new("L", (512, 512), 0)
    ImageDraw.Draw(mask).rectangle((100, 100, 400, 300), fill=255)
    result = inflate_image(shirt(), InflateParams(), mask=mask)
    assert result.metadata["background_removal"] == "mask"
    assert_valid_glb(result.data)
    with pytest.raises(NoObjectDetected, match="no object detected"):
        inflate_image(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), InflateParams())
    with pytest.raises(NoObjectDetected):
        inflate_image(shirt(), InflateParams(), mask=Image.new("L", (512, 512), 0))


def test_backend_run_writes_result_and_preview(tmp_path: Path) -> None:
    shirt().save(tmp_path / "input.png")
    mask = Image.new("L", (512, 512), 0)
    ImageDraw.Draw(mask).ellipse((100, 60, 420, 460), fill=255)
    mask.save(tmp_path / "mask.png")
    stages: list[str] = []
    backend = InflateBackend()
    backend.load("cpu")
    out = backend.run(JobInput("j1", tmp_path, tmp_path / "input.png", InflateParams(),
                               tmp_path / "mask.png"), lambda stage, *a, **k: stages.append(stage))
    assert stages == ["preprocessing", "inference", "exporting"]
    assert out.result_path == tmp_path / "result.glb" and out.media_type == "model/gltf-binary"
    assert_valid_glb(out.result_path)
    assert out.metadata["background_removal"] == "mask"
    assert not (tmp_path / "preview.png").exists()  # written after the job is reported done
    assert out.after is not None
    out.after()
    with Image.open(tmp_path / "preview.png") as preview:
        assert max(preview.size) <= 256
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "input.png", "mask.png", "preview.png", "result.glb"]  # no temp files left behind
    ply = backend.run(JobInput("j2", tmp_path, tmp_path / "input.png",
                               InflateParams(output_format="ply")), lambda *a, **k: None)
    assert ply.result_path.name == "result.ply" and ply.result_path.stat().st_size > 1000
