"""Show a GLB inline in the notebook with the page's own 3D viewer (`@google/model-viewer`).

The GLB travels inside the output as a data: URL, so the notebook's browser needs neither the
API key nor the server to show it. The viewer library comes from the server's local copy (through
the hub proxy prefix) when one is configured, else from the pinned CDN file with its hash.
"""

from __future__ import annotations

import base64
import html
import secrets
from pathlib import Path
from typing import Any

from hub3d.api.viewer import viewer_source

__all__ = ["INLINE_MAX_MB", "glb_viewer_html", "show_glb"]

INLINE_MAX_MB = 25.0  # larger outputs slow the notebook down: open the page instead


def glb_viewer_html(glb: bytes, *, viewer_dir: Path | None = None, root_path: str = "",
                    height_px: int = 420) -> str:
    """HTML for one interactive viewer (orbit, zoom, neutral lighting) showing `glb`."""
    source = viewer_source(viewer_dir)
    src = f"{root_path.rstrip('/')}/{source.url}" if source.local else source.url
    integrity = f' integrity="{source.integrity}"' if source.integrity else ""
    data = base64.b64encode(glb).decode()
    box = f"hub3d-{secrets.token_hex(4)}"
    return (
        f'<script type="module" src="{html.escape(src)}"{integrity} crossorigin="anonymous">'
        "</script>"
        f'<model-viewer id="{box}" src="data:model/gltf-binary;base64,{data}" camera-controls'
        ' touch-action="pan-y" interaction-prompt="none" environment-image="neutral"'
        ' tone-mapping="neutral" exposure="1.1" shadow-intensity="0.7"'
        ' camera-orbit="25deg 75deg auto" alt="the sample GLB"'
        f' style="width:100%;height:{height_px}px;background:#eef0f4;border-radius:8px">'
        "</model-viewer>"
    )


def show_glb(path: str | Path, handle: Any = None, **kwargs: Any) -> Any:
    """Display the GLB at `path` inline; `handle` (the server) says where its viewer copy is."""
    from IPython.display import HTML, display

    path = Path(path)
    size_mb = path.stat().st_size / 1e6
    if size_mb > INLINE_MAX_MB:
        print(f"{path.name} is {size_mb:.0f} MB: too large to show inline; open it in the page")
        return None
    if handle is not None:
        kwargs.setdefault("viewer_dir", handle.settings.viewer_dir)
        kwargs.setdefault("root_path", handle.root_path)
    out = HTML(glb_viewer_html(path.read_bytes(), **kwargs))
    display(out)
    return out
