"""GET /: hub3d's own page (drop photos, watch jobs, turn the result around in a 3D viewer).

The page and its static files hold no data, so they are open; everything the page shows comes
from the API routes, which keep their key check. All URLs in the page are relative, so it works
under a proxy prefix such as jupyter-server-proxy's `/user/<name>/proxy/<port>/`.
"""

from __future__ import annotations

import html
import logging
from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from hub3d.api.viewer import VIEWER_FILE, viewer_source
from hub3d.config import Settings

__all__ = ["install_page"]

_STATIC = files("hub3d.api") / "static"
# The page changes with hub3d; a stale cached copy would talk to a newer API.
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _render(settings: Settings) -> tuple[str, str | None]:
    source = viewer_source(settings.viewer_dir)
    if settings.viewer_dir is not None and source.local is None:
        logging.getLogger("hub3d").warning(
            "viewer dir %s has no %s; the page loads the viewer from its CDN instead "
            "(npm install --prefix %s @google/model-viewer)", settings.viewer_dir, VIEWER_FILE,
            settings.viewer_dir)
    page = (_STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{viewer_src}}", html.escape(source.url))
    page = page.replace("{{viewer_integrity}}", html.escape(source.integrity))
    return page, str(source.local) if source.local else None


def install_page(app: FastAPI, settings: Settings) -> None:
    """Add `/`, the local viewer copy (when there is one) and `/static/` to the app."""
    page, local = _render(settings)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_NO_CACHE)

    if local is not None:
        @router.get(f"/static/viewer/{VIEWER_FILE}")
        async def viewer() -> FileResponse:
            return FileResponse(local, media_type="text/javascript")

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
