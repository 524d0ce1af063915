"""Format conversions: GLB → USDZ, GLB → OBJ zip and GLB tangents; time and size.

On the inflate method's GLB (sample photo at 1024 px, texture 1024) and an SF3D-shaped GLB
(UV sphere, 1024 base-colour + normal JPEGs, as tests/format_samples.py builds it). Times are
medians over --reps runs, each into a fresh folder, with the libraries already imported (the
first conversion in a process also pays the imports: the last table).

    python -m benchmarks.formats --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import save, table
from hub3d.formats import convert_beside, get
from hub3d.formats.glb import with_tangents
from tests.format_samples import glb_summary, inflate_glb, sf3d_like_glb

_IMPORTS = ("import time; t = time.perf_counter(); import trimesh; "
            "from pxr import Usd, UsdGeom, UsdShade, UsdUtils; "
            "from pxr.UsdUtils import complianceChecker; print(time.perf_counter() - t)")


def _median_s(run: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f}"


def measure(name: str, data: bytes, reps: int) -> dict[str, Any]:
    summary = glb_summary(data)
    row: dict[str, Any] = {"glb": name, "vertices": summary["vertices"],
                           "triangles": summary["triangles"],
                           "textures": " + ".join(f"{k} {v[0]}" for k, v in
                                                  summary["textures"].items()) or "-",
                           "glb_kb": _kb(len(data))}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def fresh() -> Path:
            folder = Path(tmp) / str(next(counter))
            folder.mkdir()
            (folder / "result.glb").write_bytes(data)
            return folder / "result.glb"

        for target in ("usdz", "obj"):
            row[f"{target}_s"] = round(_median_s(lambda t=target: convert_beside(fresh(), t),
                                                 reps), 3)
            out = convert_beside(fresh(), target)
            row[f"{target}_kb"] = _kb(out.stat().st_size)
            row[f"{target}_check_s"] = round(
                _median_s(lambda o=out, t=target: get(t).check(o), reps), 3)
    row["tangents_s"] = round(_median_s(lambda: with_tangents(data), reps), 3)
    tangent = with_tangents(data)
    row["tangent_glb_kb"] = "unchanged" if tangent == data else _kb(len(tangent))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    samples = {"inflate (tex 1024)": inflate_glb(texture=1024, side=1024),
               "sf3d-shaped (tex 1024)": sf3d_like_glb(1024)}
    warm = Path(tempfile.mkdtemp()) / "result.glb"
    warm.write_bytes(samples["sf3d-shaped (tex 1024)"])
    for target in ("usdz", "obj"):
        convert_beside(warm, target)  # load trimesh and usd-core before timing
    rows = [measure(name, data, args.reps) for name, data in samples.items()]
    print(table(rows, ["glb", "vertices", "triangles", "textures", "glb_kb"]))
    print()
    print(table(rows, ["glb", "usdz_s", "usdz_check_s", "usdz_kb", "obj_s", "obj_check_s",
                       "obj_kb", "tangents_s", "tangent_glb_kb"]))
    imports = float(subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True,
                                   text=True, check=True).stdout)
    print(f"\nfirst conversion in a fresh process also imports trimesh + usd-core: "
          f"{imports:.2f} s")
    print(f"results: {save('formats', {'rows': rows, 'import_s': imports})}")
    print("(usdz_s / obj_s: convert_beside end to end = source check + conversion + check of"
          " the result; *_check_s: the check alone)")


if __name__ == "__main__":
    main()
