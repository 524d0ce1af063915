"""The page behind a real jupyter-server-proxy prefix, in a browser logged in to the hub: the
notebook's link, cookie auth for every request including POST, live stages, a valid GLB; and the
sample cell's inline viewer."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import requests

from tests.browser import drop_files, wait_for
from tests.conftest import make_png
from tests.gltf_check import assert_valid_glb
from tests.hub.conftest import Served
from tests.hub.hub_process import PASSWORD

pytestmark = pytest.mark.browser


def hub_login(browser: Any, served: Served) -> None:
    """Log in through the hub's own form, as a student does. (Sent on to a small JSON route
    of the user's server rather than the lab, whose page is heavy for a headless CPU.)"""
    user = served.user
    browser.get(f"{user.hub.url}/hub/login?next=/user/{user.name}/api/status")
    browser.find_element("id", "username_input").send_keys(user.name)
    browser.find_element("id", "password_input").send_keys(PASSWORD)
    browser.find_element("id", "login_submit").click()
    wait_for(lambda: f"/user/{user.name}/api/status" in browser.current_url, 60,
             "the user's server")


def test_page_through_the_hub_proxy_with_the_browsers_hub_login(browser: Any,
                                                                served: Served) -> None:
    # Cell 3 as printed once HUB_URL is set (this hub does not publish its address).
    ways = served.kernel.execute(
        f"print(format_ways_in(ways_in(PORT, 'proxy', api_key=API_KEY,"
        f" hub_url={served.user.hub.url!r}), API_KEY))").text
    links = re.findall(r"page \(browser\): (\S+)", ways)
    link = next(u for u in links if "/proxy/" in u)
    assert link.startswith(served.url + "/#key=")
    hub_login(browser, served)
    browser.get(link)  # the notebook's link: the hub cookie and the key from the fragment
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "app", 30,
             "the page behind the proxy")
    assert browser.execute_script("return location.hash") == ""
    assert "healthy" in browser.find_element("id", "strip").text
    drop_files(browser, "drop", [("photo.png", make_png(256), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-status=completed] a[data-download=GLB]')"),
        90, "the job through the proxy")
    seen = browser.execute_script(
        "return [...document.querySelectorAll('.job .stages li')].map(li => li.dataset.stage)")
    assert seen[-1] == "completed" and len(seen) >= 2, seen
    # The viewer library itself came through the proxy, from the server's local copy.
    assert browser.execute_script("return !!customElements.get('model-viewer')")
    job_id = browser.execute_script("return document.querySelector('.job').dataset.jobId")
    browser.find_element("css selector", ".job a[data-download=GLB]").click()
    glb = wait_for(lambda: next(iter(browser.download_dir.glob("*.glb")), None), 20, "download")
    assert_valid_glb(glb.read_bytes())
    assert glb.read_bytes() == requests.get(f"{served.url}/job/{job_id}/download",
                                            headers=served.headers(), timeout=30).content


def test_the_hub_cookie_alone_cannot_submit(served: Served) -> None:
    """jupyter-server-proxy leaves XSRF checks to the app, so another site's form could ride
    the hub cookie: the API key (a header no cross-site form can set) is what stops it."""
    session = served.user.login_session()
    session.get(f"{served.user.server_url}lab", timeout=30)
    xsrf = session.cookies.get("_xsrf", path=f"/user/{served.user.name}/")
    files = {"image": ("p.png", make_png(64), "image/png")}
    bare = session.post(f"{served.url}/generate", files=files, timeout=30,
                        headers={"X-XSRFToken": xsrf or ""})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "unauthorized"
    ok = session.post(f"{served.url}/generate", files=files, timeout=30,
                      headers={"X-API-Key": served.api_key, "X-XSRFToken": xsrf or ""})
    assert ok.status_code == 202, ok.text


def test_the_sample_cell_shows_its_glb_in_the_viewer(served: Served) -> None:
    (view,) = [h for h in [h for o in served.outputs for h in o.html] if "<model-viewer" in h]
    assert "static/viewer/model-viewer.min.js" in view  # the server's local copy
    data = re.search(r'src="data:model/gltf-binary;base64,([^"]+)"', view)
    assert data is not None
    assert_valid_glb(base64.b64decode(data.group(1)))
