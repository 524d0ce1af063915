"""usdz: a USD package for Apple devices (Quick Look and AR on iPhone/iPad/Mac), from a GLB.

Written with Pixar's usd-core: the GLB's meshes become UsdGeom.Mesh prims with
UsdPreviewSurface materials (hub3d.formats._usd_stage), packaged by
`UsdUtils.CreateNewARKitUsdzPackage`. Checked by usd-core's own compliance checker with its
ARKit rules; any error or failed check refuses the file.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from hub3d.formats._format import Format

__all__ = ["FORMAT", "check", "convert"]

_HINT = "Install usd-core with `pip install 'hub3d[server]'` (it has no Linux aarch64 wheel)"


def convert(source: Path, target: Path) -> None:
    from pxr import Sdf, UsdUtils

    from hub3d.formats._gltf_parts import read_parts
    from hub3d.formats._usd_stage import write_stage

    parts = read_parts(source)
    with tempfile.TemporaryDirectory(prefix="hub3d-usdz-") as tmp:
        layer = write_stage(parts, Path(tmp))
        if not UsdUtils.CreateNewARKitUsdzPackage(Sdf.AssetPath(str(layer)), str(target)):
            raise ValueError("usd-core could not package the stage as a USDZ")


def check(path: Path) -> None:
    """Raise ValueError with the checker's findings unless `path` is a valid ARKit USDZ."""
    from pxr import Usd, UsdGeom
    from pxr.UsdUtils.complianceChecker import ComplianceChecker

    with warnings.catch_warnings():  # usd-core 26.5 marks it deprecated; its ARKit rules are
        warnings.simplefilter("ignore", DeprecationWarning)  # not yet in the new framework
        checker = ComplianceChecker(arkit=True)
    checker.CheckCompliance(str(path))
    problems = checker.GetErrors() + checker.GetFailedChecks()
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError("usd-core's ARKit compliance check failed: "
                         + "; ".join(problems[:3]) + more)
    stage = Usd.Stage.Open(str(path))
    if not any(prim.IsA(UsdGeom.Mesh) for prim in stage.Traverse()):
        raise ValueError("the USDZ holds no mesh")


FORMAT = Format(
    name="usdz",
    suffix=".usdz",
    media_type="model/vnd.usdz+zip",
    description="USD package for Apple devices: opens in Quick Look and AR on iPhone, iPad "
                "and Mac with no app",
    check=check,
    sources=("glb",),
    convert=convert,
    requires=("pxr",),
    install_hint=_HINT,
)
