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


def validate_glb(glb: bytes | Path) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, f"node is not installed: install Node.js, then `{INSTALL}`"
    assert (JS / "node_modules" / "gltf-validator").is_dir(), f"run `{INSTALL}` first"
    with tempfile.TemporaryDirectory() as tmp:
        path = glb if isinstance(glb, Path) else Path(tmp) / "model.glb"
        if not isinstance(glb, Path):
            path.write_bytes(glb)
        out = subprocess.run([node, str(JS / "validate.mjs"), str(path)], capture_output=True,
                             text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def assert_valid_glb(glb: bytes | Path) -> dict[str, Any]:
    """0 errors from the validator; returns the report for further checks."""
    report = validate_glb(glb)
    issues = report["issues"]
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, f"glTF validator errors: {errors[:10]}"
    return report
