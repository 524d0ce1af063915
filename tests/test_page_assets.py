"""The page's files: shipped in the package, free of data, the viewer pinned with a hash that
matches the npm release, a local viewer copy served when one is configured."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import requests
import trimesh

from hub3d.api.viewer import VIEWER_FILE, VIEWER_SRI, VIEWER_VERSION, viewer_source
from hub3d.notebook.urls import format_ways_in, ways_in
from hub3d.notebook.viewer import glb_viewer_html
from tests.conftest import REPO
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess

JS = REPO / "tests" / "js"
NPM_COPY = JS / "node_modules" / "@google" / "model-viewer" / "dist" / VIEWER_FILE


def test_the_pinned_hash_is_the_npm_releases_file() -> None:
    pinned = json.loads((JS / "package.json").read_text())["dependencies"]["@google/model-viewer"]
    assert pinned == VIEWER_VERSION, "bump hub3d/api/viewer.py with tests/js/package.json"
    digest = base64.b64encode(hashlib.sha384(NPM_COPY.read_bytes()).digest()).decode()
    assert VIEWER_SRI == f"sha384-{digest}"


def test_viewer_source_prefers_a_local_copy(tmp_path: Path) -> None:
    cdn = viewer_source(None)
    assert cdn.url.endswith(f"@{VIEWER_VERSION}/dist/{VIEWER_FILE}") and cdn.integrity
    assert viewer_source(tmp_path).integrity == VIEWER_SRI  # empty folder: still the CDN
    for folder in (JS, JS / "node_modules" / "@google" / "model-viewer", NPM_COPY.parent):
        local = viewer_source(folder)
        assert local.local == NPM_COPY and local.url == f"static/viewer/{VIEWER_FILE}"


def test_page_is_open_holds_no_data_and_the_api_stays_guarded(
        start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server("--models", "inflate", env={"HUB3D_API_KEY": "k" * 24,
                                                   "HUB3D_VIEWER_DIR": str(JS)})
    page = requests.get(f"{srv.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "inflate" not in page.text and "k" * 24 not in page.text
    assert 'content="static/viewer/model-viewer.min.js"' in page.text
    for name in ("page.js", "api.js", "form.js", "jobs.js", "page.css"):
        assert requests.get(f"{srv.url}/static/{name}").status_code == 200, name
    viewer = requests.get(f"{srv.url}/static/viewer/{VIEWER_FILE}")
    assert viewer.content == NPM_COPY.read_bytes()
    assert "javascript" in viewer.headers["content-type"]
    for route in ("/jobs", "/models", "/queue"):
        assert requests.get(f"{srv.url}{route}").status_code == 401, route
    assert requests.get(f"{srv.url}/static/../hub3d/config.py").status_code == 404


def test_without_a_local_copy_the_page_names_the_cdn_with_its_hash(
        start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server("--models", "inflate")
    page = requests.get(f"{srv.url}/").text
    assert f'data-integrity="{VIEWER_SRI}"' in page
    assert requests.get(f"{srv.url}/static/viewer/{VIEWER_FILE}").status_code == 404


def test_the_notebook_prints_a_page_link_per_way_in_with_the_key_in_the_fragment() -> None:
    ways = ways_in(9299, "proxy", api_key="a/b+c", hub_url="https://hub.example.org",
                   env={"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"})
    text = format_ways_in(ways, "a/b+c")
    assert "page (browser): https://hub.example.org/user/ann/proxy/9299/#key=a%2Fb%2Bc" in text
    assert "page (browser): http://127.0.0.1:9299/#key=a%2Fb%2Bc" in text
    assert ways[0].page_url(None) == "https://hub.example.org/user/ann/proxy/9299/"


def test_the_notebook_viewer_embeds_the_glb_and_names_the_viewer(tmp_path: Path) -> None:
    glb = trimesh.creation.box().export(file_type="glb")
    local = glb_viewer_html(glb, viewer_dir=JS, root_path="/user/ann/proxy/9299")
    assert 'src="/user/ann/proxy/9299/static/viewer/model-viewer.min.js"' in local
    data = re.search(r'src="data:model/gltf-binary;base64,([^"]+)"', local)
    assert data is not None and base64.b64decode(data.group(1)) == glb
    assert_valid_glb(glb)
    cdn = glb_viewer_html(glb, viewer_dir=tmp_path)  # no copy there: the pinned CDN file
    assert f'integrity="{VIEWER_SRI}"' in cdn and f"@{VIEWER_VERSION}/" in cdn
