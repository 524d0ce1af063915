"""Request and public response models (the OpenAPI schema is built from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "error_responses",
    "ErrorBody",
    "ErrorResponse",
    "GenerateRequest",
    "HealthResponse",
    "JobAccepted",
    "JobView",
    "ModelInfo",
    "QueueView",
    "Timestamps",
]


class GenerateRequest(BaseModel):
    """JSON body of POST /generate. Model parameters beyond these are checked by the backend."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    image: str | None = Field(None, description="base64 image (PNG/JPEG/WebP); data: URLs accepted")
    image_url: str | None = Field(None, description="http(s) URL to fetch the image from")
    model: str | None = Field(None, description="backend name; default: the first served model")
    mask: str | None = Field(None, description="optional base64 mask image (white = object)")
    seed: int | None = None
    output_format: str | None = Field(None, description="glb or ply")
    with_texture: bool | None = None
    texture_resolution: int | None = None
    remesh_option: str | None = Field(None, description="none, triangle or quad")
    vertex_count: int | None = None
    foreground_ratio: float | None = None


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
    model: str
    device: str | None
    params: dict[str, Any]
    timings: dict[str, float]
    timestamps: Timestamps


class QueueView(BaseModel):
    queued: int
    processing: int
    max_queue_size: int
    max_concurrent: int
    order: list[dict[str, Any]] = Field(default_factory=list)


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
