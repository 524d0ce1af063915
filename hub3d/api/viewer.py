"""Where the page's 3D viewer (`@google/model-viewer`) comes from.

A pinned CDN copy checked by subresource integrity, or, when `HUB3D_VIEWER_DIR` points at a
local copy (offline labs, CI), the file from there, served by hub3d under `static/viewer/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["VIEWER_FILE", "VIEWER_SRI", "VIEWER_VERSION", "ViewerSource", "find_local_viewer",
           "viewer_source"]

# Pinned: the page's viewer API (camera-controls, load event, environment-image) as of 4.4.0.
# Bump together with tests/js/package.json; tests/test_page_assets.py checks the hash.
VIEWER_VERSION = "4.4.0"
VIEWER_FILE = "model-viewer.min.js"
# sha384 of dist/model-viewer.min.js in the npm tarball of that version.
VIEWER_SRI = "sha384-wjsPzEO+lXOf7d9csIDfAQpPt2OKuUU3m0K9qsdKIuzX4N8czSF6hdh23eAbZa3p"
_CDN = f"https://cdn.jsdelivr.net/npm/@google/model-viewer@{VIEWER_VERSION}/dist/{VIEWER_FILE}"
_LOCAL_URL = f"static/viewer/{VIEWER_FILE}"
# Where a copy may sit inside the folder given: the file itself, a package, an npm prefix.
_CANDIDATES = (Path(VIEWER_FILE), Path("dist") / VIEWER_FILE,
               Path("node_modules/@google/model-viewer/dist") / VIEWER_FILE)


@dataclass(frozen=True)
class ViewerSource:
    url: str  # relative to the page, so it works under a proxy prefix
    integrity: str  # "" for the local copy: same origin, and its version is the lab's choice
    local: Path | None


def find_local_viewer(folder: Path | None) -> Path | None:
    """The viewer file inside `folder`, or None when there is none."""
    if folder is None:
        return None
    folder = folder.expanduser()
    for candidate in _CANDIDATES:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def viewer_source(folder: Path | None) -> ViewerSource:
    local = find_local_viewer(folder)
    if local is not None:
        return ViewerSource(url=_LOCAL_URL, integrity="", local=local)
    return ViewerSource(url=_CDN, integrity=VIEWER_SRI, local=None)
