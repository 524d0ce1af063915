"""The ipywidgets panel: live server state, models, GPU memory, queue, last jobs, log tail and
buttons. A daemon thread refreshes it, so the kernel stays free for other cells."""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from hub3d.activity import MONITOR_HEADER
from hub3d.api.auth import download_sig
from hub3d.notebook.server import ServerHandle, start_server

__all__ = ["Panel", "render_html", "show_panel", "snapshot"]

_PANEL: Panel | None = None


def snapshot(handle: ServerHandle, jobs: int = 8) -> dict[str, Any]:
    """Everything the panel shows, gathered through the server's own HTTP API."""
    import requests

    snap: dict[str, Any] = {"status": handle.status(), "health": None, "queue": None,
                            "jobs": [], "logs": handle.logs[-15:], "error": None,
                            "api_key": handle.api_key,
                            "formats": {e.name: list(e.formats) for e in handle.catalog}}
    if not handle.running:
        return snap
    try:
        with requests.Session() as http:
            http.headers.update({**handle.headers(), MONITOR_HEADER: "panel"})
            snap["health"] = http.get(f"{handle.url}/health", timeout=5).json()
            snap["queue"] = http.get(f"{handle.url}/queue", timeout=5).json()
        # Recent jobs straight from the store, with the queue wait GET /jobs does not give.
        snap["jobs"] = [
            {"job_id": j.id, "status": j.status.value, "model": j.model,
             "processing_time": j.processing_time,
             "wait_s": round(j.started_at - j.created_at, 2) if j.started_at else None,
             "error": j.error}
            for j in handle.app.state.store.recent(jobs)
        ]
    except Exception as exc:  # the panel must keep refreshing whatever the server does
        snap["error"] = f"{type(exc).__name__}: {exc}"
    return snap


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th style='text-align:left;padding:0 8px'>{h}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:0 8px'>{c}</td>" for c in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{cells}</tr>{body or '<tr><td>(none)</td></tr>'}</table>"


def _download_link(snap: dict[str, Any], job_id: str, fmt: str | None = None) -> str:
    """Path-absolute behind the hub proxy (the browser is on the hub, with its cookie), signed
    for this job, since a link cannot send X-API-Key."""
    st = snap["status"]
    base = (st.get("root_path") or st["url"]).rstrip("/")
    key = snap.get("api_key")
    query = [f"format={fmt}"] if fmt else []
    query += [f"sig={download_sig(key, job_id)}"] if key else []
    return f"{base}/job/{job_id}/download" + (f"?{'&'.join(query)}" if query else "")


def _downloads(snap: dict[str, Any], job: dict[str, Any]) -> str:
    """A link per format the job's model offers (each converted on first click)."""
    names = snap.get("formats", {}).get(job["model"]) or [None]
    return " &middot; ".join(
        f"<a href='{html.escape(_download_link(snap, job['job_id'], f))}' target='_blank'>"
        f"{html.escape(f or 'download')}</a>" for f in names)


def render_html(snap: dict[str, Any], public_url: str | None = None) -> str:
    st, health, queue = snap["status"], snap["health"] or {}, snap["queue"] or {}
    base = (public_url or st["url"]).rstrip("/")
    since = time.strftime("%H:%M:%S", time.localtime(st["started_at"])) \
        if st.get("started_at") else "-"
    # no ticking clock here: the panel redraws (a kernel message) only when something changed
    parts = [f"<b>hub3d</b> {html.escape(st['state'])} at <code>{html.escape(base)}</code>"
             f" &middot; health: <b>{html.escape(str(health.get('status', '-')))}</b>"
             f" &middot; up since {since}"]
    models = health.get("models") or {}
    parts.append(_table(["model", "state", "device", "error"],
                        [[n, m.get("state"), m.get("device") or "-",
                          html.escape(m.get("error") or "")] for n, m in models.items()]))
    gpus = health.get("gpus") or []
    parts.append("GPU: " + ("; ".join(
        f"{g['name']} {g['vram_gb'] - g['vram_free_gb']:.1f}/{g['vram_gb']:.1f} GB used"
        for g in gpus) or "none visible (CPU only)"))
    parts.append(f"Queue: {queue.get('queued', 0)} waiting, {queue.get('processing', 0)} running"
                 f" (max {queue.get('max_queue_size', '-')})")
    parts.append(_table(["pos", "job", "status", "model", "stage"],
                        [[o["position"] or "running", o["job_id"][:10], o["status"], o["model"],
                          o.get("stage") or ""] for o in queue.get("order", [])]))
    parts.append(_table(["job", "status", "model", "waited s", "took s", "result"], [
        [j["job_id"][:10], j["status"], j["model"], j["wait_s"] or "", j["processing_time"] or "",
         _downloads(snap, j) if j["status"] == "completed" else
         html.escape((j["error"] or "")[:80])]
        for j in snap["jobs"]]))
    if snap["error"]:
        parts.append(f"<span style='color:#b00'>{html.escape(snap['error'])}</span>")
    tail = html.escape("\n".join(snap["logs"]))
    parts.append(f"<pre style='max-height:12em;overflow:auto;font-size:85%'>{tail}</pre>")
    parts.append("<small>Live while this kernel runs. After a kernel restart this is a leftover"
                 " of the old kernel: Run All again.</small>")
    return "<br>".join(parts)


class Panel:
    def __init__(self, handle: ServerHandle, public_url: str | None = None,
                 refresh_s: float = 2.0) -> None:
        import ipywidgets as w

        self.handle, self.public_url, self.refresh_s = handle, public_url, refresh_s
        self.view = w.HTML()
        self.message = w.HTML()
        names = handle.settings.model_names
        self.model = w.Dropdown(options=names, value=names[0], description="model")
        buttons = {"stop": self.stop, "restart": self.restart, "unload model": self.unload,
                   "run a test image": self.test_image}
        row = []
        for label, action in buttons.items():
            button = w.Button(description=label)
            button.on_click(lambda _b, act=action: self._in_thread(act))
            row.append(button)
        self.widget = w.VBox([self.view, w.HBox([self.model, *row]), self.message])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub3d-panel", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self.refresh()
            self._closed.wait(self.refresh_s)

    def refresh(self) -> None:
        """Redraw only on change: each redraw is a kernel message, and the Jupyter server
        counts those as activity (a panel redrawing every 2 s would never let the hub cull)."""
        value = render_html(snapshot(self.handle), self.public_url)
        if value != self.view.value:
            self.view.value = value

    def _in_thread(self, action: Any) -> None:
        def run() -> None:
            try:
                self.message.value = html.escape(str(action() or ""))
            except Exception as exc:
                self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            self.refresh()
        threading.Thread(target=run, daemon=True).start()

    def stop(self) -> str:
        self.handle.stop()
        return "stopped"

    def restart(self) -> str:
        s = self.handle.settings
        self.handle.stop()
        same = s.model_dump(exclude={"port", "models", "data_dir", "api_key", "host",
                                     "root_path"})
        self.handle = start_server(
            s.port, s.models, s.data_dir, s.api_key_value(), host=s.host,
            root_path=self.handle.root_path, **same)
        return f"restarted at {time.strftime('%H:%M:%S')}"

    def unload(self) -> str:
        import requests

        r = requests.post(f"{self.handle.url}/models/{self.model.value}/unload",
                          headers=self.handle.headers(), timeout=60)
        return f"unload {self.model.value}: {r.json().get('state', r.text)}"

    def test_image(self) -> str:
        from hub3d.notebook.sample import run_sample

        job = run_sample(self.handle, model=self.model.value)
        return f"test image done in {job['processing_time']} s: {job['path']}"

    def close(self) -> None:
        self._closed.set()
        self.widget.close()


def show_panel(handle: ServerHandle, public_url: str | None = None,
               refresh_s: float = 2.0) -> Panel:
    """Display the panel; a re-run cell replaces the previous one."""
    global _PANEL
    from IPython.display import display

    if _PANEL is not None:
        _PANEL.close()
    _PANEL = Panel(handle, public_url, refresh_s)
    display(_PANEL.widget)
    return _PANEL
