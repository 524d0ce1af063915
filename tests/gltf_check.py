"""The Khronos glTF validator (npm `gltf-validator`), run through node on a GLB."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

JS = Path(__file__).resolve().parent / "js"
INSTALL = "npm ci --prefix tests/js"


def validate_glb(glb: bytes | str | Path) -> dict[str, Any]:
    """The validator's JSON report for a GLB given as bytes or a path."""
    node = shutil.which("node")
    if not node:
        raise AssertionError(f"node is not installed: install Node.js 18+, then `{INSTALL}`")
    if not (JS / "node_modules" / "gltf-validator").is_dir():
        raise AssertionError(f"the glTF validator is not installed: run `{INSTALL}`")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.glb"
        if isinstance(glb, bytes):
            path.write_bytes(glb)
        else:
            path = Path(glb)
        out = subprocess.run([node, str(JS / "validate.mjs"), str(path)], capture_output=True,
                             text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"the glTF validator failed to run: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def assert_valid_glb(glb: bytes | Path) -> dict[str, Any]:
    """0 errors from the validator; returns the report for further checks."""
    report = validate_glb(glb)
    issues = report["issues"]
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, f"glTF validator errors: {errors[:10]}"
    return report
