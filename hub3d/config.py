"""Server settings: one pydantic-settings class, read from env vars and CLI flags alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_DATA_DIR", "Settings", "data_dir_from_env"]

DEFAULT_DATA_DIR = "~/hub3d-data"


def data_dir_from_env(explicit: str | Path | None = None) -> Path:
    """The data dir for tools that run without Settings (weights, watch): the given one, else
    HUB3D_DATA_DIR, else ~/hub3d-data, as the server reads it."""
    raw = explicit or os.environ.get("HUB3D_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything the control plane needs; built once at start and passed in explicitly."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    host: str = Field("127.0.0.1", validation_alias=_env("host", "HUB3D_HOST"))
    port: int = Field(9299, ge=0, le=65535, validation_alias=_env("port", "PORT"))
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["inflate"], validation_alias=_env("models", "HUB3D_MODELS")
    )
    data_dir: Path = Field(
        Path(DEFAULT_DATA_DIR), validation_alias=_env("data_dir", "HUB3D_DATA_DIR")
    )
    api_key: SecretStr | None = Field(None, validation_alias=_env("api_key", "HUB3D_API_KEY"))
    max_concurrent: int = Field(
        1, ge=1, le=64, validation_alias=_env("max_concurrent", "MAX_CONCURRENT")
    )
    max_queue_size: int = Field(
        10, ge=1, le=100_000, validation_alias=_env("max_queue_size", "MAX_QUEUE_SIZE")
    )
    result_ttl_hours: float = Field(
        24.0, gt=0, validation_alias=_env("result_ttl_hours", "HUB3D_RESULT_TTL_HOURS")
    )
    # "auto": every visible GPU for CUDA backends, "cpu" otherwise; or a list like cuda:0,cuda:1.
    devices: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["auto"], validation_alias=_env("devices", "HUB3D_DEVICES")
    )
    # Jobs one worker runs at once on its one loaded model; unset: each backend's own default.
    jobs_per_worker: int | None = Field(
        None, ge=1, le=64, validation_alias=_env("jobs_per_worker", "HUB3D_JOBS_PER_WORKER"))
    # A running job that has not ended after this long is failed (code timeout), its worker
    # ended and its other jobs run again.
    job_timeout_s: float = Field(
        1800.0, gt=0, validation_alias=_env("job_timeout_s", "HUB3D_JOB_TIMEOUT_S"))
    # One warm-up job after each load: auto = where the backend says it pays (SF3D on a GPU).
    warmup: Literal["auto", "on", "off"] = Field(
        "auto", validation_alias=_env("warmup", "HUB3D_WARMUP"))
    preload: bool = Field(False, validation_alias=_env("preload", "HUB3D_PRELOAD"))
    # A Ray cluster to run the models on (`auto`: the one this machine is part of); unset:
    # worker processes on this machine.
    ray_address: str | None = Field(
        None, validation_alias=_env("ray_address", "HUB3D_RAY_ADDRESS"))
    max_upload_mb: float = Field(
        25.0, gt=0, validation_alias=_env("max_upload_mb", "HUB3D_MAX_UPLOAD_MB")
    )
    max_image_pixels: int = Field(
        40_000_000, gt=0, validation_alias=_env("max_image_pixels", "HUB3D_MAX_IMAGE_PIXELS")
    )
    sync_timeout_s: float = Field(
        280.0, gt=0, validation_alias=_env("sync_timeout_s", "HUB3D_SYNC_TIMEOUT_S")
    )
    url_timeout_s: float = Field(
        10.0, gt=0, validation_alias=_env("url_timeout_s", "HUB3D_URL_TIMEOUT_S")
    )
    # Off by default: image_url may not reach loopback/private hosts (SSRF). Tests turn it on.
    allow_private_urls: bool = Field(
        False, validation_alias=_env("allow_private_urls", "HUB3D_ALLOW_PRIVATE_URLS")
    )
    root_path: str = Field("", validation_alias=_env("root_path", "HUB3D_ROOT_PATH"))
    # keep the hub (and kernel) told the server is in use while it works, and this long after
    # the last request; the hub's own reports come every 300 s, so once a minute is plenty
    activity_interval_s: float = Field(
        60.0, gt=0, validation_alias=_env("activity_interval_s", "HUB3D_ACTIVITY_INTERVAL_S"))
    activity_window_s: float = Field(
        300.0, ge=0, validation_alias=_env("activity_window_s", "HUB3D_ACTIVITY_WINDOW_S"))
    log_level: str = Field("info", validation_alias=_env("log_level", "HUB3D_LOG_LEVEL"))
    # A local copy of the page's 3D viewer (offline labs): a folder holding model-viewer.min.js,
    # or one where `npm install @google/model-viewer` ran. Unset: the page loads it from a CDN.
    viewer_dir: Path | None = Field(
        None, validation_alias=_env("viewer_dir", "HUB3D_VIEWER_DIR")
    )

    @field_validator("models", "devices", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one model is required, e.g. --models inflate")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def default_model(self) -> str:
        return self.model_names[0]

    @property
    def model_names(self) -> list[str]:
        """Names as clients use them: `name=module:Class` entries are served as `name`."""
        return [spec.split("=", 1)[0] for spec in self.models]

    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None
