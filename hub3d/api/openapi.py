"""/openapi.json with the /generate body built from each served backend's parameters model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from hub3d.api.schemas import generate_request_body
from hub3d.models.base import Backend

__all__ = ["install_openapi"]

_GENERATE_PATHS = ("/generate", "/generate/sync")


def _served_backends(app: FastAPI) -> dict[str, tuple[type[Backend], list[str]]]:
    return {e.name: (e.cls, list(e.formats)) for e in app.state.catalog if e.cls is not None}


def install_openapi(app: FastAPI) -> None:
    """Wrap FastAPI's schema builder: its output, plus the per-model request bodies (the
    routes read the raw request, so FastAPI cannot infer them)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            body, defs = generate_request_body(_served_backends(app),
                                               app.state.catalog.default)
            for path in _GENERATE_PATHS:
                schema["paths"][path]["post"]["requestBody"] = body
            if defs:
                schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
