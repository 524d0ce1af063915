"""The shared headless-Chromium fixture works here: pages load, WebGL draws, downloads land."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_chromium_has_webgl(browser: Any) -> None:
    """The 3D viewer needs WebGL; headless Chromium gives it through SwiftShader."""
    browser.get("data:text/html,<canvas id=c></canvas>")
    renderer = browser.execute_script(
        "const gl = document.getElementById('c').getContext('webgl2')"
        " || document.getElementById('c').getContext('webgl');"
        "return gl ? gl.getParameter(gl.RENDERER) : null;")
    assert renderer, "no WebGL context in headless Chromium: check the SwiftShader flags"
