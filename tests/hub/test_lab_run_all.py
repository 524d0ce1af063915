"""Run All in JupyterLab, in a browser logged in to the real hub: the notebook in the user's home,
Run > Run All Cells, the outputs in the page, the server healthy through the proxy and the live
panel (an ipywidget) rendered in the page saying so."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

from tests.browser import wait_for
from tests.hub.conftest import FIGURES, NOTEBOOK, wait_proxy_healthy
from tests.hub.hub_process import PASSWORD, HubUser
from tests.hub.kernel_ws import Kernel
from tests.servers import free_port

pytestmark = pytest.mark.browser

NAME = "hub3d_gpu.ipynb"  # a user's renamed copy: the printed restart command must name it


def notebook_with(params: dict[str, Any], home: Path) -> Path:
    """The server notebook as a user edits it: the parameters cell's values changed in place."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    for name, value in params.items():
        cell.source, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", cell.source,
                                 flags=re.M)
        assert n == 1, f"no {name} in the parameters cell"
    path = home / NAME
    nbformat.write(nb, path)
    return path


def lab_session(user: HubUser) -> dict[str, Any] | None:
    """The notebook's session on the user's server (JupyterLab makes it), with its kernel."""
    r = requests.get(f"{user.server_url}api/sessions", headers=user.headers(), timeout=10)
    return next((s for s in r.json() if s["path"].endswith(NAME)), None)


def accept_kernel_dialog(browser: Any) -> None:
    for button in browser.find_elements("css selector", ".jp-Dialog .jp-mod-accept"):
        button.click()


def test_run_all_in_jupyterlab_serves_and_shows_the_panel(browser: Any, hub_user: HubUser,
                                                          tmp_path: Path) -> None:
    user = hub_user.start()
    home = user.hub.dir / "home" / user.name
    port = free_port()
    notebook_with({"PORT": port, "MODELS": "inflate", "SAMPLE": False,
                   "DATA_DIR": str(tmp_path / "data")}, home)
    t0 = time.monotonic()
    browser.get(f"{user.hub.url}/hub/login?next=/user/{user.name}/lab/tree/{NAME}")
    browser.find_element("id", "username_input").send_keys(user.name)
    browser.find_element("id", "password_input").send_keys(PASSWORD)
    browser.find_element("id", "login_submit").click()
    kernel_id = None
    try:
        # The notebook open, its kernel started and idle: Run All before that runs nothing.
        wait_for(lambda: browser.find_elements("css selector", ".jp-Notebook .jp-Cell"), 60,
                 "the notebook open in JupyterLab")

        def kernel_idle() -> dict[str, Any] | None:
            accept_kernel_dialog(browser)  # "Select Kernel", where the lab asks
            s = lab_session(user)
            ok = s and s["kernel"] and s["kernel"]["execution_state"] == "idle"
            return s if ok else None

        kernel_id = wait_for(kernel_idle, 60, "the notebook's kernel idle", 0.5)["kernel"]["id"]
        run_menu = next(m for m in browser.find_elements("css selector", ".lm-MenuBar-item")
                        if m.text.strip() == "Run")
        run_menu.click()
        wait_for(lambda: browser.find_element(
            "css selector", ".lm-Menu-item[data-command='runmenu:run-all']"), 10,
            "Run > Run All Cells").click()

        prefix = f"/user/{user.name}/proxy/{port}"

        def outputs() -> str:
            return "\n".join(o.text for o in browser.find_elements(
                "css selector", ".jp-OutputArea-output"))

        wait_for(lambda: "== hub proxy: " in outputs() and prefix + "/" in outputs(), 60,
                 "the ways-in cell's output in the page")
        text = outputs()
        assert "Traceback" not in text, text
        (restart,) = [ln for ln in text.splitlines() if " -m hub3d restart " in ln]
        named = shlex.split(restart)[shlex.split(restart).index("--notebook") + 1]
        assert Path(named) == (home / NAME).resolve(), restart  # the file this tab has open
        assert re.search(rf"sf3d_client\.py .*--server \S*{re.escape(prefix)}\b", text), text
        wait_proxy_healthy(user.proxy_url(port).rstrip("/"), user.headers(), timeout=30)
        ready_s = time.monotonic() - t0
        # The panel: an ipywidget the page rendered (not its text/plain fallback).
        panel = wait_for(lambda: next((w for w in browser.find_elements(
            "css selector", ".jp-OutputArea-output .widget-html")
            if "hub3d" in w.text and "health: healthy" in w.text), None), 30,
            "the live panel, healthy, in the page")
        assert prefix in panel.text  # it names the address the laptop uses
        assert browser.find_elements("css selector", ".widget-button")
        FIGURES["JupyterLab: login, open, Run All -> healthy through the proxy"] = \
            f"{ready_s:.1f} s"
    except Exception:
        print("\n".join(str(e) for e in browser.get_log("browser"))[-3000:])
        raise
    finally:
        kernel_id = kernel_id or ((lab_session(user) or {}).get("kernel") or {}).get("id")
        if kernel_id:  # stop the server inside the lab's kernel, then end that kernel
            kernel = Kernel.attach(user, kernel_id)
            kernel.execute("if 'server' in globals(): server.stop()", check=False, timeout=60)
            kernel.shutdown()
    gone = requests.get(f"{user.proxy_url(port)}health", headers=user.headers(), timeout=10)
    assert gone.status_code != 200, gone.text  # stopped: the proxy finds nothing on the port
