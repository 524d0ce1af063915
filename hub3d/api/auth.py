"""X-API-Key check (constant time). The key travels in its own header so it never clashes with
the hub proxy's `Authorization: token …`. Declared as an API-key security scheme, so /docs has
an Authorize button and its "Try it out" sends the key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from hub3d.errors import Unauthorized

__all__ = ["api_key_header", "download_sig", "key_ok", "require_api_key"]

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="APIKey",
    description="the key the server printed (HUB3D_API_KEY, or DATA_DIR/api_key)")


def download_sig(api_key: str, job_id: str) -> str:
    """`?sig=` for a job's download link: a link cannot send X-API-Key, and this one opens
    that job's result only, never the key."""
    return hmac.new(api_key.encode(), f"download:{job_id}".encode(), hashlib.sha256).hexdigest()


def key_ok(request: Request) -> bool:
    expected = request.app.state.settings.api_key_value()
    if not expected:
        return True
    given = request.headers.get("x-api-key", "")
    if secrets.compare_digest(given.encode(), expected.encode()):
        return True
    job_id, sig = request.path_params.get("job_id"), request.query_params.get("sig", "")
    return bool(job_id and sig and request.method == "GET"
                and request.url.path.endswith(f"/job/{job_id}/download")
                and secrets.compare_digest(sig.encode(), download_sig(expected, job_id).encode()))


async def require_api_key(request: Request,
                          _key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    if not key_ok(request):
        raise Unauthorized("missing or wrong API key: send it in the X-API-Key header")
