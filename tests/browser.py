"""Headless Chromium through selenium, for the `browser` tier (and any test that needs a page).

`chromium_driver(profile_dir)` starts Debian's `chromium` + `chromium-driver` with the flags this
machine needs: no sandbox (root in CI), no network chatter of its own, a fresh profile, and
WebGL through SwiftShader so a 3D canvas draws without a GPU. The `browser` fixture in
tests/conftest.py wraps it and quits it after the test.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["INSTALL", "chromium_driver", "drop_files", "find_chromium", "wait_for"]

INSTALL = "apt-get install chromium chromium-driver && pip install selenium"

_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
    # WebGL without a GPU: ANGLE over SwiftShader (software), allowed explicitly.
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
)


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or shutil.which("chromium-driver")
    if browser and driver:
        return browser, driver
    return None


def chromium_driver(profile_dir: Path, *, download_dir: Path | None = None) -> Any:
    """A selenium Chrome driver on headless Chromium; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError(f"chromium or chromedriver is missing: {INSTALL}")
    browser, driver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in _FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile_dir}")
    if download_dir is not None:
        opts.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        })
    # Browser console messages, so a failing page test can print what the page said.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    # SwiftShader compiles a 3D page's shaders on the CPU, holding the page's thread for tens
    # of seconds on a busy machine: scripts run after that, rather than time out at 30 s.
    chrome.set_script_timeout(180)
    if download_dir is not None:  # headless Chromium ignores the download prefs without this
        chrome.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": str(download_dir)})
    return chrome


def drop_files(driver: Any, target_id: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop (name, bytes, mime type) files on the element with id `target_id`, as a user's
    drag and drop does: dragenter, dragover, drop, with the files in a real DataTransfer."""
    driver.execute_script("""
        const [target, items] = arguments;
        const dt = new DataTransfer();
        for (const [name, b64, type] of items) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          dt.items.add(new File([bytes], name, { type }));
        }
        const zone = document.getElementById(target);
        for (const kind of ["dragenter", "dragover", "drop"]) {
          zone.dispatchEvent(new DragEvent(kind, { dataTransfer: dt, bubbles: true,
                                                   cancelable: true }));
        }
    """, target_id, [[n, base64.b64encode(b).decode(), t] for n, b, t in files])


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
             interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; that value. TimeoutError names `what`."""
    end = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the page may be mid-render: keep polling, report the last
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout} s" + (f": {last_exc}" if last_exc else ""))
