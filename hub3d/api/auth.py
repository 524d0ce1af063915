"""X-API-Key check (constant time). The key travels in its own header so it never clashes with
the hub proxy's `Authorization: token …`."""

from __future__ import annotations

import secrets

from fastapi import Request

from hub3d.errors import Unauthorized

__all__ = ["key_ok", "require_api_key"]


def key_ok(request: Request) -> bool:
    expected = request.app.state.settings.api_key_value()
    if not expected:
        return True
    given = request.headers.get("x-api-key", "")
    return secrets.compare_digest(given.encode(), expected.encode())


async def require_api_key(request: Request) -> None:
    if not key_ok(request):
        raise Unauthorized("missing or wrong API key: send it in the X-API-Key header")
