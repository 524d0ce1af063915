"""hub3d.formats: the registry, what a backend can offer, and converting once beside a result."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trimesh

import hub3d.formats
from hub3d import formats
from hub3d.errors import (
    ConversionFailed,
    FormatNotOffered,
    FormatUnavailable,
    InvalidParams,
    UnknownFormat,
)
from hub3d.formats import convert_beside, get, names, offered, source_for
from tests.format_samples import inflate_glb, inflate_ply, uv_sphere

pytest.importorskip("pxr", reason="usd-core is part of hub3d[server]")


def _glb_result(folder: Path, data: bytes | None = None) -> Path:
    path = folder / "result.glb"
    path.write_bytes(inflate_glb() if data is None else data)
    return path


def test_each_format_is_declared_once_with_its_media_type() -> None:
    table = {f.name: (f.suffix, f.media_type, f.sources) for f in formats.all_formats()}
    assert table == {
        "glb": (".glb", "model/gltf-binary", ()),
        "obj": (".obj.zip", "application/zip", ("glb",)),
        "ply": (".ply", "application/octet-stream", ()),
        "usdz": (".usdz", "model/vnd.usdz+zip", ("glb",)),
    }
    assert names() == ["glb", "obj", "ply", "usdz"]
    assert all(f.description and "\n" not in f.description for f in formats.all_formats())
    assert get("USDZ") is get(".usdz") is get("usdz")
    assert hub3d.formats.__all__ == sorted(hub3d.formats.__all__)


def test_an_unknown_format_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormat) as err:
        get("fbx")
    assert str(err.value) == "unknown output format 'fbx': hub3d writes glb, obj, ply, usdz"
    assert err.value.code == "unknown_format" and err.value.status_code == 422
    assert isinstance(err.value, InvalidParams)
    with pytest.raises(UnknownFormat, match="hub3d writes glb, obj, ply, usdz"):
        convert_beside(_glb_result(tmp_path), "fbx")


def test_what_a_backend_can_offer() -> None:
    assert offered(("glb",)) == ["glb", "obj", "usdz"]
    assert offered(("glb", "ply")) == ["glb", "ply", "obj", "usdz"]
    assert offered(("ply",)) == ["ply"]
    assert source_for("usdz", ("ply", "glb")) == "glb"
    assert source_for("glb", ("glb",)) == "glb"
    assert source_for("ply", ("glb",)) is None
    assert source_for("usdz", ("ply",)) is None


def test_a_format_not_made_from_this_result_says_from_what(tmp_path: Path) -> None:
    ply = tmp_path / "result.ply"
    ply.write_bytes(inflate_ply())
    with pytest.raises(FormatNotOffered) as err:
        convert_beside(ply, "usdz")
    assert str(err.value) == "usdz cannot be made from a ply result: it is made from glb."
    assert err.value.code == "format_not_offered"
    with pytest.raises(FormatNotOffered, match="only models that write it natively serve it"):
        convert_beside(_glb_result(tmp_path), "ply")
    assert convert_beside(ply, "ply") == ply


def test_converted_once_then_served_from_disk(tmp_path: Path) -> None:
    source = _glb_result(tmp_path)
    first = convert_beside(source, "usdz")
    stat = first.stat()
    again = convert_beside(source, "usdz")
    assert again == first == tmp_path / "result.usdz"
    assert (again.stat().st_ino, again.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_concurrent_requests_share_one_real_conversion(tmp_path: Path) -> None:
    source = _glb_result(tmp_path)
    results = _in_threads(8, lambda: convert_beside(source, "obj"))
    assert set(results) == {tmp_path / "result.obj.zip"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.glb", "result.obj.zip"]


def test_a_corrupt_result_gives_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    source = _glb_result(tmp_path, b"glTF this is not really a GLB")
    with pytest.raises(ConversionFailed) as err:
        convert_beside(source, "usdz")
    assert str(err.value).startswith("cannot make result.usdz: result.glb is not a valid glb"
                                     " file (GLB version")
    assert "Generate the model again" in str(err.value)
    assert err.value.code == "conversion_failed"
    assert [p.name for p in tmp_path.iterdir()] == ["result.glb"]
    assert source.read_bytes() == b"glTF this is not really a GLB"


@pytest.mark.parametrize("target", ["usdz", "obj"])
def test_a_glb_without_triangles_fails_conversion_cleanly(tmp_path: Path, target: str) -> None:
    vertices, _, _ = uv_sphere(4, 8)
    points = trimesh.exchange.gltf.export_glb(trimesh.Scene(trimesh.PointCloud(vertices)))
    source = _glb_result(tmp_path, points)
    with pytest.raises(ConversionFailed) as err:
        convert_beside(source, target)
    assert str(err.value).startswith(f"converting result.glb to {target} failed (ValueError: "
                                     "the GLB holds no triangle mesh). The glb file is unchanged:")
    assert [p.name for p in tmp_path.iterdir()] == ["result.glb"]
    assert source.read_bytes() == points


def test_checks_say_what_is_wrong(tmp_path: Path) -> None:
    ply = tmp_path / "result.ply"
    ply.write_bytes(inflate_ply())
    get("ply").check(ply)
    ply.write_bytes(ply.read_bytes()[:-10])
    with pytest.raises(ValueError, match="it is truncated or corrupt"):
        get("ply").check(ply)
    glb = _glb_result(tmp_path)
    get("glb").check(glb)
    glb.write_bytes(glb.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        get("glb").check(glb)


# --- a format is one file: modules added to the package at run time are found ---------------

COPY_FORMAT = '''
import time
from pathlib import Path

from hub3d.formats import Format

LOG = Path(__file__).with_name("conversions.log")


def check(path):
    if not Path(path).read_bytes().startswith(b"glTF"):
        raise ValueError("not a copied GLB")


def convert(source, target):
    with open(LOG, "a") as log:
        log.write(Path(source).name + "\\n")
    time.sleep(0.3)  # long enough for every other thread to arrive and wait
    Path(target).write_bytes(Path(source).read_bytes()[:{cut}])
    {fail}


FORMAT = Format(name="{name}", suffix=".{name}", media_type="application/octet-stream",
                description="a copy of the GLB (a test format)", check=check, sources=("glb",),
                convert=convert, requires={requires!r}, install_hint="Install the test kit")
'''


@pytest.fixture
def add_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[Callable[..., Path]]:
    """Drop a module into hub3d.formats (through a folder added to the package's path)."""
    folder = tmp_path / "more_formats"
    folder.mkdir()
    monkeypatch.setattr(hub3d.formats, "__path__", [*hub3d.formats.__path__, str(folder)])

    def add(name: str, text: str | None = None, *, fail: str = "", cut: str = "",
            requires: tuple[str, ...] = ()) -> Path:
        source = text if text is not None else COPY_FORMAT.format(
            name=name, fail=fail, cut=cut, requires=requires)
        (folder / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        formats.reload()
        return folder / "conversions.log"

    yield add
    for module in [m for m in sys.modules if m.startswith("hub3d.formats.zz")]:
        del sys.modules[module]
    formats.reload()


def test_a_new_module_is_a_new_format(add_format: Callable[..., Path], tmp_path: Path) -> None:
    log = add_format("zzcopy")
    assert "zzcopy" in names() and get("zzcopy").suffix == ".zzcopy"
    assert offered(("glb",)) == ["glb", "obj", "usdz", "zzcopy"]
    source = _glb_result(tmp_path)
    results = _in_threads(8, lambda: convert_beside(source, "zzcopy"))
    assert set(results) == {tmp_path / "result.zzcopy"}
    assert log.read_text() == "result.glb\n"  # 8 concurrent requests, one conversion
    assert convert_beside(source, "zzcopy").read_bytes() == source.read_bytes()
    assert log.read_text() == "result.glb\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "result.glb", "result.zzcopy"]


@pytest.mark.parametrize("fail,cut,reason", [
    ("raise RuntimeError('the disk caught fire')", "", "RuntimeError: the disk caught fire"),
    ("", "0", "ValueError: not a copied GLB"),  # wrote an empty file: its check refuses it
])
def test_a_failed_conversion_leaves_no_partial_file(add_format: Callable[..., Path],
                                                    tmp_path: Path, fail: str, cut: str,
                                                    reason: str) -> None:
    add_format("zzbroken", fail=fail, cut=cut)
    source = _glb_result(tmp_path)
    before = source.read_bytes()
    with pytest.raises(ConversionFailed) as err:
        convert_beside(source, "zzbroken")
    assert str(err.value) == (f"converting result.glb to zzbroken failed ({reason}). The glb file"
                              " is unchanged: download it as glb instead, and report this with"
                              " the job id.")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["result.glb"]
    assert source.read_bytes() == before


def test_a_format_whose_library_is_missing_is_not_offered(add_format: Callable[..., Path],
                                                          tmp_path: Path) -> None:
    add_format("zzneeds", requires=("hub3d_no_such_module",))
    assert "zzneeds" in names() and "zzneeds" not in offered(("glb",))
    with pytest.raises(FormatUnavailable) as err:
        convert_beside(_glb_result(tmp_path), "zzneeds")
    assert str(err.value).startswith("the zzneeds format needs the Python module "
                                     "hub3d_no_such_module, which is not installed in this"
                                     " server's Python (")
    assert str(err.value).endswith("Install the test kit, then restart the server.")
    assert err.value.code == "format_unavailable" and err.value.status_code == 503
    assert isinstance(err.value, ConversionFailed)


def test_a_module_that_is_not_a_format_is_named(add_format: Callable[..., Path]) -> None:
    add_format("zzempty", "x = 1\n")
    with pytest.raises(TypeError, match=r"hub3d.formats.zzempty declares no FORMAT"):
        names()


def _in_threads(n: int, call: Callable[[], Path]) -> list[Path]:
    barrier = threading.Barrier(n)
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == n
    return results
