"""Turn a POST /generate request (JSON or multipart) into a validated job with its files."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hub3d.api.schemas import RESERVED
from hub3d.config import Settings
from hub3d.errors import (
    FormatNotOffered,
    ImageTooLarge,
    InvalidInput,
    InvalidParams,
    UnknownFormat,
    UnsupportedMedia,
)
from hub3d.fsutil import atomic_write_bytes
from hub3d.models.base import Backend, GenerateParams
from hub3d.models.catalog import Catalog

__all__ = [
    "ParsedRequest",
    "parse_generate_request",
    "preload_imaging",
    "validate_params",
    "write_job_inputs",
]



def validate_params(model: str, backend: type[Backend], raw: dict[str, Any]) -> GenerateParams:
    """The backend's own parameters model validates; a 422 says what was wrong and, for a
    parameter the model does not take, which ones it does."""
    try:
        return backend.params_model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    details = [f"{'.'.join(str(p) for p in e['loc']) or 'params'}: "
               f"{e['msg'].removeprefix('Value error, ')}"
               for e in errors if e["type"] != "extra_forbidden"]
    if unknown:
        takes = ", ".join(backend.params_model.model_fields)
        details.append(f"model '{model}' does not take {', '.join(unknown)}; it takes {takes}"
                       " (GET /models has each one's range and default)")
    raise InvalidParams(f"invalid parameters for model '{model}': {'; '.join(details)}")


@dataclass
class ParsedRequest:
    model: str
    params: GenerateParams
    image: bytes | None
    image_url: str | None
    mask: bytes | None

    def digest(self) -> str:
        """What was asked for (model, params, image or URL, mask), to tell a retry of this
        request from a different one sent with the same Idempotency-Key."""
        h = hashlib.sha256(json.dumps(
            {"model": self.model, "params": self.params.model_dump(mode="json"),
             "image_url": self.image_url}, sort_keys=True).encode())
        for part in (self.image, self.mask):
            h.update(b"\0" if part is None else hashlib.sha256(part).digest())
        return h.hexdigest()


def _b64(value: str, field: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"'{field}' is not valid base64; send the file's bytes base64-encoded"
                           " or use a multipart upload") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ImageTooLarge(f"request body is {int(declared) / 1e6:.1f} MB; the limit is"
                            f" {limit / 1e6:.0f} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ImageTooLarge(f"request body is over the {limit / 1e6:.0f} MB limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fields(request: Request, settings: Settings) -> dict[str, Any]:
    # base64 inflates by 4/3; allow for it plus a little JSON around the image.
    limit = int(settings.max_upload_mb * 1e6 * 1.4) + 65536
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_part_size=limit)
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                fields[key] = await value.read()
            elif key in ("image", "mask"):
                fields[key] = _b64(value, key)
            else:
                fields[key] = value
        return fields
    if ctype not in ("application/json", ""):
        raise UnsupportedMedia(f"content type '{ctype}' is not accepted: send JSON"
                               " (application/json) or a multipart/form-data upload")
    body = await _read_body(request, limit)
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object with an 'image' or 'image_url'")
    for key in ("image", "mask"):
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise InvalidInput(f"'{key}' must be a base64 string")
            data[key] = _b64(data[key], key)
    return data


async def parse_generate_request(
    request: Request, settings: Settings, catalog: Catalog
) -> ParsedRequest:
    fields = await _fields(request, settings)
    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
    model = fields.get("model") or settings.default_model
    if not isinstance(model, str):
        raise InvalidInput("'model' must be a string")
    entry = catalog.entry(model)
    backend = entry.backend()
    image, url = fields.get("image"), fields.get("image_url")
    if (image is None) == (url is None):
        raise InvalidInput("send exactly one of 'image' (base64 or file upload) and 'image_url'")
    if url is not None and not isinstance(url, str):
        raise InvalidInput("'image_url' must be a string")
    try:
        params = validate_params(model, backend, {k: v for k, v in fields.items()
                                                  if k not in RESERVED})
    except UnknownFormat as exc:
        raise UnknownFormat(f"{exc.message}; model '{model}' offers "
                            f"{', '.join(entry.formats)}") from None
    if params.output_format not in entry.formats:
        others = [e.name for e in catalog if params.output_format in e.formats]
        elsewhere = f" (served here by: {', '.join(others)})" if others else ""
        raise FormatNotOffered(f"model '{model}' does not offer output_format "
                               f"'{params.output_format}'{elsewhere}; it offers "
                               f"{', '.join(entry.formats)}")
    if _overrides_check(backend):
        # the backend sees the format it writes itself (a usdz is made from its glb); the
        # check may probe the model's own Python env
        native = params.model_copy(update={"output_format": entry.native_for(
            params.output_format)})
        await run_in_threadpool(partial(backend.check_request, native, python=entry.python))
    return ParsedRequest(model, params, image, url, fields.get("mask"))


def _overrides_check(backend: type[Backend]) -> bool:
    """The default check does nothing: no thread hop for it on the request path."""
    return any("check_request" in vars(cls) for cls in backend.__mro__ if cls is not Backend)


def _decode_and_save(data: bytes, path: Path, settings: Settings, *, mask: bool) -> None:
    # Imaging (Pillow, numpy) and fetching (requests) load on first use, or from the warm-up
    # thread the app starts: the server answers /health sooner after a cold start.
    from hub3d.imaging.decode import decode_image, save_png, storable_png

    limits = {"max_bytes": int(settings.max_upload_mb * 1e6),
              "max_pixels": settings.max_image_pixels}
    if not mask and storable_png(data, **limits):
        atomic_write_bytes(path, data)  # a verified RGB(A) PNG: no decode or re-encode here
        return
    decoded = decode_image(data, **limits)
    save_png(decoded.image.convert("L") if mask else decoded.image, path)


async def write_job_inputs(parsed: ParsedRequest, job_dir: Path, settings: Settings) -> None:
    """Decode (validating) and write input.png (+ mask.png) into a new job folder."""
    if parsed.image is not None:
        data = parsed.image
    else:
        assert parsed.image_url is not None
        from hub3d.imaging.fetch import fetch_image_url

        data = await run_in_threadpool(
            fetch_image_url, parsed.image_url, max_bytes=int(settings.max_upload_mb * 1e6),
            timeout_s=settings.url_timeout_s, allow_private=settings.allow_private_urls)
    job_dir.mkdir(parents=True)
    await run_in_threadpool(_decode_and_save, data, job_dir / "input.png", settings, mask=False)
    if parsed.mask is not None:
        await run_in_threadpool(_decode_and_save, parsed.mask, job_dir / "mask.png", settings,
                                mask=True)


def preload_imaging() -> None:
    """Import what the first upload needs; run in a thread once the server is up."""
    import hub3d.imaging.decode
    import hub3d.imaging.fetch  # noqa: F401
