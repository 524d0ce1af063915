"""The in-kernel server handle: real uvicorn threads on 127.0.0.1, real ports and files."""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub3d import formats
from hub3d.notebook import PortInUse, block, resolve_api_key, running_servers, start_server
from hub3d.notebook.panel import Panel, render_html, snapshot
from hub3d.notebook.ports import port_is_free
from hub3d.notebook.sample import run_sample
from hub3d.notebook.urls import format_ways_in, hub_proxy_url, proxy_root_path, ways_in
from tests.servers import free_port


@pytest.fixture(autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for handle in running_servers().values():
        handle.stop()


def test_rerunning_the_start_cell_replaces_the_server(tmp_path: Path) -> None:
    port = free_port()
    first = start_server(port=port, models="inflate", data_dir=tmp_path)
    assert requests.get(f"{first.url}/health", timeout=5).json()["status"] == "healthy"
    second = start_server(port=port, models="inflate", data_dir=tmp_path)
    assert first.status()["state"] == "stopped" and second.status()["state"] == "running"
    assert running_servers() == {port: second}
    assert requests.get(f"{second.url}/health", timeout=5).ok
    assert threading.current_thread() is threading.main_thread()  # the cell returned
    second.stop()
    assert port_is_free(port) and running_servers() == {}
    log = (tmp_path / "logs" / f"server-{port}.log").read_text()
    assert "Application startup complete" in log and "Application shutdown complete" in log


def test_port_0_serves_on_the_port_the_os_picked(tmp_path: Path) -> None:
    handle = start_server(port=0, models="inflate", data_dir=tmp_path)
    try:
        assert handle.port > 0 and handle.url.endswith(f":{handle.port}")
        assert requests.get(f"{handle.url}/health", timeout=10).json()["status"] == "healthy"
        assert running_servers()[handle.port] is handle
    finally:
        handle.stop()
    assert port_is_free(handle.port)


def test_port_taken_by_another_process_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(PortInUse) as err:
            start_server(port=port, models="inflate", data_dir=tmp_path)
        assert time.monotonic() - t0 < 5
    message = str(err.value)
    assert f"port {port} is already in use" in message
    assert f"pid {os.getpid()}" in message and "PORT =" in message
    assert running_servers() == {}


def test_an_unservable_model_is_reported_at_start(tmp_path: Path) -> None:
    handle = start_server(port=free_port(), models="inflate,nonexistent", data_dir=tmp_path)
    assert "nonexistent" in handle.problems()
    assert any("model nonexistent cannot be served" in line for line in handle.logs)
    assert requests.get(f"{handle.url}/health", timeout=5).json()["status"] == "degraded"


def test_api_key_generated_once_and_private(tmp_path: Path) -> None:
    key = resolve_api_key(None, tmp_path)
    assert len(key) >= 32 and resolve_api_key(None, tmp_path) == key
    assert stat.S_IMODE((tmp_path / "api_key").stat().st_mode) == 0o600
    assert resolve_api_key("given", tmp_path) == "given"
    # typed as `--api-key KEY`, a key that starts with "-" reads as an option (1 in 64 did)
    assert not [k for i in range(2000) if (k := resolve_api_key(None, tmp_path / str(i)))[0] == "-"]
    handle = start_server(port=free_port(), models="inflate", data_dir=tmp_path, api_key=key)
    assert requests.get(f"{handle.url}/queue", timeout=5).status_code == 401
    assert requests.get(f"{handle.url}/queue", headers=handle.headers(), timeout=5).ok


def test_docs_work_behind_the_hub_proxy_prefix(tmp_path: Path) -> None:
    port = free_port()
    # as a hub with c.JupyterHub.public_url sets them: PUBLIC_URL is this server's own URL
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/",
           "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/ada/",
           "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/"}
    root = proxy_root_path(port, env)
    assert root == f"/user/ada/proxy/{port}"
    assert hub_proxy_url(port, env=env) == f"https://hub.example.org/user/ada/proxy/{port}/"
    del env["JUPYTERHUB_PUBLIC_URL"]
    assert hub_proxy_url(port, env=env) == f"https://hub.example.org/user/ada/proxy/{port}/"
    assert hub_proxy_url(port, "https://h.org/hub/", {"JUPYTERHUB_SERVICE_PREFIX": "/user/b/"}) \
        == f"https://h.org/user/b/proxy/{port}/"
    assert hub_proxy_url(port, env={}) is None
    handle = start_server(port=port, models="inflate", data_dir=tmp_path, root_path=root)
    # the proxy strips the prefix before forwarding: /docs must point back through it
    docs = requests.get(f"{handle.url}/docs", timeout=5).text
    assert f"{root}/openapi.json" in docs
    assert requests.get(f"{handle.url}/health", timeout=5).ok


def test_ways_in_commands() -> None:
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/",
           "JUPYTERHUB_PUBLIC_URL": "https://hub.org/user/ada/"}
    ways = ways_in(9299, "proxy", api_key="k", env=env)
    assert [w.name for w in ways] == ["hub proxy", "SSH tunnel"]
    text = format_ways_in(ways, "k")
    assert "export HUB3D_API_KEY=k" in text and "https://hub.org/hub/token" in text
    assert ('curl -H "Authorization: token $JUPYTERHUB_TOKEN" -H "X-API-Key: $HUB3D_API_KEY" '
            "https://hub.org/user/ada/proxy/9299/health") in text
    assert "--hub-token" in text and "ssh -N -L 9299:127.0.0.1:9299" in text
    unknown = ways_in(9299, "proxy", api_key=None, env={})
    assert "HUB_URL" in unknown[0].notes[0]
    ngrok = ways_in(9299, "ngrok", api_key="k", ngrok_url="https://a.ngrok.app", env={})
    assert ngrok[0].headers["ngrok-skip-browser-warning"] == "1"
    assert "hub activity" in ngrok[0].notes[0]
    with pytest.raises(ValueError, match="TUNNEL must be"):
        ways_in(9299, "vpn", api_key=None)


def test_ways_in_name_the_user_and_the_ssh_host() -> None:
    """No public URL configured: the hub's address is a placeholder, the user's name is not;
    the SSH line never says user@localhost."""
    ways = ways_in(9299, "proxy", api_key=None, env={"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"})
    assert ways[0].url == "https://YOUR-HUB/user/ada/proxy/9299/"
    assert "@localhost" not in format_ways_in(ways, None)


def test_sample_and_panel_on_a_live_server(tmp_path: Path) -> None:
    from tests.gltf_check import assert_valid_glb

    handle = start_server(port=free_port(), models="inflate", data_dir=tmp_path, api_key="k")
    obj = run_sample(handle, output_format="obj")  # saved under its format's own ending
    assert obj["path"].endswith("tshirt.obj.zip")
    formats.get("obj").check(Path(obj["path"]))
    job = run_sample(handle)
    assert job["status"] == "completed" and Path(job["path"]).stat().st_size > 1000
    assert_valid_glb(Path(job["path"]))
    snap = snapshot(handle)
    assert snap["error"] is None and snap["health"]["status"] == "healthy"
    assert snap["jobs"][0]["job_id"] == job["job_id"]
    snap["jobs"] = snap["jobs"][:1]
    page = render_html(snap, "https://hub.org/user/a/proxy/1/")
    # the download links open in a browser tab, which cannot send X-API-Key: they are signed;
    # one per format the model offers
    links = {fmt: html.unescape(link) for link, fmt in
             re.findall(r"href='([^']+/download[^']*)' target='_blank'>(\w+)</a>", page)}
    assert list(links) == ["glb", "ply", "obj", "usdz"], links
    got = requests.get(links["glb"], timeout=10)
    assert got.ok and got.content == Path(job["path"]).read_bytes()
    usdz = requests.get(links["usdz"], timeout=60)
    assert usdz.ok and usdz.headers["content-type"] == "model/vnd.usdz+zip", usdz.text[:300]
    (tmp_path / "panel.usdz").write_bytes(usdz.content)
    formats.get("usdz").check(tmp_path / "panel.usdz")  # usd-core's ARKit checker
    assert requests.get(links["glb"][:-4] + "0000", timeout=10).status_code == 401
    assert "inflate" in page and "CPU only" in page
    panel = Panel(handle, refresh_s=0.2)
    try:
        deadline = time.monotonic() + 10
        while "healthy" not in panel.view.value and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "healthy" in panel.view.value
        assert "unload inflate" in panel.unload()
        assert "test image done" in panel.test_image()
        assert "restarted" in panel.restart()
        assert panel.handle is running_servers()[handle.port] and panel.handle.running
    finally:
        panel.close()


def test_block_heartbeats_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    handle = start_server(port=free_port(), models="inflate", data_dir=tmp_path)
    lines: list[str] = []
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    reason = block(handle, heartbeat_s=0.5, print_fn=lambda s, **_: lines.append(s))
    assert reason == "terminated"
    assert sum("hub3d running at" in line for line in lines) >= 2
    assert lines[-1] == "hub3d stopped (terminated)"
    assert not handle.running and port_is_free(handle.port)
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_kept_alive_connections_answer_without_waiting_for_the_clients_ack(
        tmp_path: Path) -> None:
    """The socket the server is handed is a TCP one, so its connections get TCP_NODELAY (as
    asyncio's own do): else every answer on a kept-alive connection waited ~40 ms (Nagle)."""
    import socket

    handle = start_server(port=free_port(), models="inflate", data_dir=tmp_path)
    try:
        with requests.Session() as http:
            assert http.get(f"{handle.url}/health", timeout=10).ok  # the connection stays open
            server = handle._server
            [connection] = [c for c in server.server_state.connections
                            if c.transport is not None]
            sock = connection.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        handle.stop()
