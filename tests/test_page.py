"""The page at / in a real browser against a real server: drop → live stages → the mesh drawn in
the 3D viewer → a valid GLB download; the API's errors; the form's ranges; the key prompt."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from hub3d import formats
from tests.browser import drop_files, wait_for
from tests.conftest import REPO, make_png
from tests.gltf_check import assert_valid_glb
from tests.servers import ServerProcess

pytestmark = pytest.mark.browser

# The viewer library from tests/js (npm), served by hub3d itself: CI has no CDN.
VIEWER = {"HUB3D_VIEWER_DIR": str(REPO / "tests" / "js")}
ORDER = ["queued", "processing", "loading_model", "preprocessing", "inference", "exporting",
         "completed", "failed", "canceled"]
KEY = "page-test-key-0123456789"
# SwiftShader compiles the viewer's shaders on the CPU: the first model takes ~30 s to show.
MESH_TIMEOUT_S = 120


def without_viewer(driver: Any) -> None:
    """Block the viewer library, as an offline lab without a local copy would: tests that are
    not about the mesh skip SwiftShader's ~30 s of shader work on the page's thread."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*model-viewer*"]})


def open_page(driver: Any, url: str) -> str:
    driver.get(url)
    return str(wait_for(lambda: driver.execute_script("return document.body.dataset.ready"),
                        20, "the page to start"))


def stages(driver: Any) -> list[str]:
    return list(driver.execute_script(
        "return [...document.querySelectorAll('.job .stages li')].map(li => li.dataset.stage)"))


def job_ids(server: ServerProcess) -> list[str]:
    return [j["job_id"] for j in requests.get(f"{server.url}/jobs", timeout=5).json()]


def drawn_fraction(png: bytes) -> tuple[float, float]:
    """Of the viewer's pixels: the share unlike its background, and the share the model's red
    texture colours (the test photo is a red ellipse with a blue patch)."""
    px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    unlike = (np.abs(px - px[2, 2]).max(axis=2) > 40).mean()
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    red = ((r > 120) & (g < 90) & (b < 90)).mean()
    return float(unlike), float(red)


def test_drop_shows_stages_then_mesh_then_downloads_a_valid_glb(
        browser: Any, start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    srv = start_server("--models", "inflate", env=VIEWER)
    assert open_page(browser, f"{srv.url}/") == "app"
    drop_files(browser, "drop", [("photo.png", make_png(384), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-status=completed]')"), 60, "job completed")
    seen = stages(browser)
    assert seen[-1] == "completed" and len(seen) >= 2, seen
    assert [ORDER.index(s) for s in seen] == sorted({ORDER.index(s) for s in seen}), seen
    assert set(seen) & {"loading_model", "preprocessing", "inference", "exporting"}, seen
    assert browser.find_elements("css selector", ".job .timings dd"), "no timings shown"

    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-viewer=loaded]')"), MESH_TIMEOUT_S,
        "the mesh in the viewer")
    viewer = browser.find_element("css selector", ".job model-viewer")
    # The load event comes before the first frame: wait until the canvas shows the model.
    unlike, red = wait_for(lambda: (lambda f: f if f[0] > 0.10 and f[1] > 0.03 else None)(
        drawn_fraction(viewer.screenshot_as_png)), 60, "the model drawn on the canvas")
    assert unlike > 0.10 and red > 0.03, (unlike, red)
    shots = os.environ.get("PAGE_SCREENSHOT_DIR")
    if shots:  # docs/page.png is made this way
        browser.save_screenshot(str(Path(shots) / "page.png"))

    job_id = browser.execute_script("return document.querySelector('.job').dataset.jobId")
    browser.find_element("css selector", ".job a[data-download=GLB]").click()
    glb = wait_for(lambda: next(iter(browser.download_dir.glob("*.glb")), None), 20,
                   "the GLB download")
    wait_for(lambda: not list(browser.download_dir.glob("*.crdownload")), 20, "download done")
    assert glb.read_bytes() == requests.get(f"{srv.url}/job/{job_id}/download").content
    assert_valid_glb(glb.read_bytes())
    db = sqlite3.connect(next((tmp_path / "data").glob("jobs.sqlite3")))
    (key,) = db.execute("SELECT idempotency_key FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert key, "the page sent no Idempotency-Key"


def test_bad_image_shows_the_apis_own_message(
        browser: Any, start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    srv = start_server("--models", "inflate", env=VIEWER)
    bad = b"\x89PNG\r\n\x1a\n this is not really a PNG"
    direct = requests.post(f"{srv.url}/generate", files={"image": ("bad.png", bad, "image/png")})
    assert 400 <= direct.status_code < 500
    message = direct.json()["error"]["message"]
    open_page(browser, f"{srv.url}/")
    path = tmp_path / "bad.png"
    path.write_bytes(bad)
    browser.find_element("id", "file").send_keys(str(path))  # the file picker
    shown = wait_for(lambda: browser.find_element("css selector", ".job .error").text, 20,
                     "the error on the job card")
    assert shown == message


def test_form_refuses_out_of_range_values_before_sending(
        browser: Any, start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server("--models", "inflate", env=VIEWER)
    without_viewer(browser)
    open_page(browser, f"{srv.url}/")
    field = browser.find_element("css selector", "#params input[name=texture_resolution]")
    assert field.get_attribute("min") == "64" and field.get_attribute("max") == "4096"
    field.clear()
    field.send_keys("99999")
    drop_files(browser, "drop", [("photo.png", make_png(128), "image/png")])
    error = wait_for(lambda: browser.find_element("id", "form-error").text, 10, "form error")
    assert "Texture Resolution" in error and "out of range (64 to 4096)" in error
    assert not browser.find_elements("css selector", ".job")
    assert job_ids(srv) == [], "a job was sent with a value out of range"

    field.clear()
    field.send_keys("256")
    drop_files(browser, "drop", [("a.png", make_png(128), "image/png"),
                                 ("b.png", make_png(128, (40, 160, 40)), "image/png")])
    wait_for(lambda: len(browser.find_elements(
        "css selector", ".job[data-status=completed]")) == 2, 60, "two jobs completed")
    assert browser.find_element("id", "form-error").text == ""
    jobs = requests.get(f"{srv.url}/jobs").json()
    assert len(jobs) == 2 and {j["params"]["texture_resolution"] for j in jobs} == {256}


def test_without_the_viewer_library_the_page_still_works(
        browser: Any, start_server: Callable[..., ServerProcess]) -> None:
    """Offline, no local copy: progress, a preview image and the downloads all remain."""
    srv = start_server("--models", "inflate")
    without_viewer(browser)
    open_page(browser, f"{srv.url}/")
    drop_files(browser, "drop", [("photo.png", make_png(128), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job .result img[src^=blob]')"), 60, "the preview")
    assert "viewer unavailable" in browser.find_element("css selector", ".job .result").text
    labels = [a.text for a in browser.find_elements("css selector", ".job .downloads a")]
    assert labels == ["GLB", "PLY", "OBJ", "USDZ", "metadata.json"]
    assert not browser.find_elements("css selector", "model-viewer")


def test_each_format_the_model_offers_downloads_from_the_job_card(
        browser: Any, start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """USDZ (for a Mac's Quick Look) and the OBJ zip are made on the first click, with the
    page's key, and saved under the names the server gives them."""
    srv = start_server("--models", "inflate", env={"HUB3D_API_KEY": KEY})
    without_viewer(browser)
    browser.get(f"{srv.url}/#key={KEY}")
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready"), 20, "app")
    drop_files(browser, "drop", [("photo.png", make_png(128), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-status=completed] .downloads a')"), 60,
        "the downloads")
    for label, fmt in (("USDZ", "usdz"), ("OBJ", "obj")):
        browser.find_element("css selector", f".job a[data-download={label}]").click()
        suffix = formats.get(fmt).suffix
        saved = wait_for(lambda end=suffix: next((p for p in browser.download_dir.iterdir()
                                                  if p.name.endswith(end)), None), 60,
                         f"the {label}")
        wait_for(lambda: not list(browser.download_dir.glob("*.crdownload")), 20, "saved")
        formats.get(fmt).check(saved)  # usd-core's ARKit rules; the OBJ zip read back


def test_with_a_key_set_the_page_shows_only_the_key_prompt(
        browser: Any, start_server: Callable[..., ServerProcess]) -> None:
    srv = start_server("--models", "inflate", env={"HUB3D_API_KEY": KEY, **VIEWER})
    raw = requests.get(f"{srv.url}/").text
    assert "inflate" not in raw and "healthy" not in raw  # the HTML itself holds no data
    assert requests.get(f"{srv.url}/jobs").status_code == 401
    without_viewer(browser)
    assert open_page(browser, f"{srv.url}/") == "key"
    visible = browser.find_element("tag name", "body").text
    assert "API key" in visible
    assert "inflate" not in visible and "healthy" not in visible and "queue" not in visible
    assert not browser.find_element("id", "app").is_displayed()

    browser.find_element("id", "key-input").send_keys("wrong-key")
    browser.find_element("css selector", "#key-form button").click()
    wait_for(lambda: "refused that key" in browser.find_element("id", "key-error").text, 10,
             "the wrong-key message")
    browser.find_element("id", "key-input").clear()
    browser.find_element("id", "key-input").send_keys(KEY)
    browser.find_element("css selector", "#key-form button").click()
    wait_for(lambda: browser.find_element("id", "app").is_displayed(), 10, "the app")
    assert browser.find_element("id", "model").get_attribute("value") == "inflate"
    assert open_page(browser, f"{srv.url}/") == "app"  # kept in the browser

    browser.execute_script("localStorage.clear()")
    assert open_page(browser, f"{srv.url}/") == "key"
    browser.get("about:blank")  # the notebook's link, opened in a fresh page
    assert open_page(browser, f"{srv.url}/#key={KEY}") == "app"
    wait_for(lambda: browser.execute_script("return location.hash") == "", 5, "fragment gone")
    browser.execute_script("localStorage.clear()")
    assert open_page(browser, f"{srv.url}/") == "key"
    browser.execute_script("location.hash = arguments[0]", f"key={KEY}")  # pasted in this tab
    wait_for(lambda: browser.find_element("id", "app").is_displayed(), 10, "the app via hash")
    drop_files(browser, "drop", [("photo.png", make_png(128), "image/png")])
    wait_for(lambda: browser.execute_script(
        "return document.querySelector('.job[data-status=completed] a[data-download=GLB]')"),
        60, "a completed job with the key")
