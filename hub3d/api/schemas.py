"""Request and public response models (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hub3d.models.base import Backend

__all__ = [
    "error_responses",
    "ErrorBody",
    "ErrorResponse",
    "RESERVED",
    "generate_request_body",
    "HealthResponse",
    "JobAccepted",
    "JobView",
    "FormatInfo",
    "ModelInfo",
    "WeightsInfo",
    "QueueView",
    "Timestamps",
]


# Request fields that are not model parameters; the rest of a body is the model's parameters.
RESERVED = ("image", "image_url", "model", "mask")
_RESERVED_SCHEMA: dict[str, dict[str, Any]] = {
    "image": {"type": "string", "description": "base64 image (PNG/JPEG/WebP); data: URLs accepted"},
    "image_url": {"type": "string", "description": "http(s) URL to fetch the image from"},
    "mask": {"type": "string", "description": "optional base64 mask image (white = object)"},
}


def _request_schema(name: str, cls: type[Backend], default: bool, defs: dict[str, Any],
                    multipart: bool, offered: list[str]) -> dict[str, Any]:
    """One model's POST /generate body: the reserved fields plus its parameters model."""
    params = cls.params_model.model_json_schema(ref_template="#/components/schemas/{model}")
    if "output_format" in params.get("properties", {}):
        params["properties"]["output_format"]["enum"] = offered
    defs.update(params.pop("$defs", {}))
    model = {"type": "string", "enum": [name],
             "description": "omit for the default model" if default else "this model's name"}
    reserved = dict(_RESERVED_SCHEMA)
    if multipart:
        reserved["image"] = {"type": "string", "format": "binary"}
        reserved["mask"] = {"type": "string", "format": "binary"}
    return {"title": f"{name} request", "type": "object",
            "description": cls.description or name,
            "properties": {**reserved, "model": model, **params.get("properties", {})},
            "required": [] if default else ["model"], "additionalProperties": False}


def generate_request_body(backends: dict[str, tuple[type[Backend], list[str]]],
                          default: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAPI requestBody of /generate and /generate/sync, built from each served backend's
    parameters model, and the component schemas those refer to."""
    defs: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for media, multipart in (("application/json", False), ("multipart/form-data", True)):
        variants = [_request_schema(n, c, n == default, defs, multipart, offered)
                    for n, (c, offered) in backends.items()]
        if not variants:  # no backend could be imported: /health says why
            variants = [{"type": "object"}]
        content[media] = {"schema": variants[0] if len(variants) == 1 else {"anyOf": variants}}
    return {"required": True, "content": content}, defs


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error shape for these status codes."""
    return {code: {"model": ErrorResponse} for code in codes}


class JobAccepted(BaseModel):
    job_id: str
    status: str
    position: int
    status_url: str
    message: str


class Timestamps(BaseModel):
    created_at: float | None
    started_at: float | None
    finished_at: float | None


class JobView(BaseModel):
    job_id: str
    status: str
    stage: str | None
    position: int
    queue_length: int
    message: str
    download_url: str | None
    processing_time: float | None
    error: str | None
    error_code: str | None = Field(description="why it failed, for programs (docs/api.md)")
    advice: str | None = Field(description="what to do about the failure")
    model: str
    device: str | None
    params: dict[str, Any]
    timings: dict[str, float]
    timestamps: Timestamps


class QueueView(BaseModel):
    queued: int
    processing: int
    max_queue_size: int
    slots: int = Field(description="how many jobs can run at once, over all models and "
                                   "devices (workers × jobs per worker)")
    max_concurrent: int = Field(description="the same number as slots (its older name, kept"
                                            " for existing clients)")
    order: list[dict[str, Any]] = Field(default_factory=list)


class WeightsInfo(BaseModel):
    checkpoint: str | None = Field(description="the folder or hub id its workers load")
    source: str = Field(description="setting | fetched | source_tree | hub | none")
    offline: bool = Field(description="true: its workers never go online for files")
    missing: list[str] = Field(description="files of `hub3d fetch-weights` not on disk")
    summary: str


class FormatInfo(BaseModel):
    name: str = Field(description="the value of output_format and of download's ?format=")
    suffix: str = Field(description="the file name's ending, with its dot")
    media_type: str
    description: str
    native: bool = Field(description="written by the model itself (else converted from one)")


class ModelInfo(BaseModel):
    name: str
    description: str
    default: bool
    state: str
    device: str | None
    devices: list[str]
    error: str | None
    device_kind: str
    vram_gb: float
    parameters: dict[str, Any] = Field(description="JSON schema of the backend's parameters")
    workers: list[dict[str, Any]]
    formats: list[FormatInfo] = Field(description="the output formats it offers, for "
                                                  "output_format and /job/{id}/download?format=")
    python: str = Field(description="the Python its workers run")
    python_from: str = Field(description="the setting that chose it")
    weights: WeightsInfo | None = Field(description="where its checkpoint comes from")


class HealthResponse(BaseModel):
    status: str
    version: str | None = None
    model_loaded: bool | None = None
    default_model: str | None = None
    models: dict[str, dict[str, Any]] | None = None
    cuda: bool | None = None
    gpu: dict[str, Any] | None = None
    gpus: list[dict[str, Any]] | None = None
    queue: dict[str, int] | None = None
