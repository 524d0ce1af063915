"""Domain errors. Routes map them to HTTP; messages tell the user what to do.

    Hub3DError
    ├── InvalidInput        400  bad request body / unreadable image
    │   ├── ImageTooLarge   413
    │   └── UnsupportedMedia 415
    ├── InvalidParams       422  parameters a backend refuses
    │   ├── UnknownFormat   422  an output format hub3d does not know
    │   └── FormatNotOffered 422 a known format that cannot be made from this result
    ├── Unauthorized        401
    ├── JobNotFound         404
    ├── UnknownModel        404
    ├── JobNotReady         409
    ├── QueueFull           429  (retry_after seconds)
    ├── ModelUnavailable    503
    ├── ConversionFailed    500  a finished result could not be converted to another format
    │   └── FormatUnavailable 503  the library that writes the format is not installed
    └── ModelError               raised inside a worker; ends the job "failed", never an HTTP 5xx
        ├── NoObjectDetected
        └── OutOfMemory          also restarts the worker, so its memory is really freed
"""

from __future__ import annotations

__all__ = [
    "ConversionFailed",
    "FormatNotOffered",
    "FormatUnavailable",
    "Hub3DError",
    "ImageTooLarge",
    "InvalidInput",
    "InvalidParams",
    "JobNotFound",
    "JobNotReady",
    "ModelError",
    "ModelUnavailable",
    "NoObjectDetected",
    "OutOfMemory",
    "QueueFull",
    "Unauthorized",
    "UnknownFormat",
    "UnknownModel",
    "UnsupportedMedia",
]


class Hub3DError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(Hub3DError):
    status_code = 400
    code = "invalid_input"


class ImageTooLarge(InvalidInput):
    status_code = 413
    code = "image_too_large"


class UnsupportedMedia(InvalidInput):
    status_code = 415
    code = "unsupported_media_type"


class InvalidParams(Hub3DError):
    status_code = 422
    code = "invalid_parameters"


class UnknownFormat(InvalidParams):
    code = "unknown_format"


class FormatNotOffered(InvalidParams):
    code = "format_not_offered"


class Unauthorized(Hub3DError):
    status_code = 401
    code = "unauthorized"


class JobNotFound(Hub3DError):
    status_code = 404
    code = "job_not_found"


class UnknownModel(Hub3DError):
    status_code = 404
    code = "unknown_model"


class JobNotReady(Hub3DError):
    status_code = 409
    code = "job_not_ready"


class IdempotencyKeyReused(Hub3DError):
    status_code = 409
    code = "idempotency_key_reused"


class QueueFull(Hub3DError):
    status_code = 429
    code = "queue_full"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailable(Hub3DError):
    status_code = 503
    code = "model_unavailable"


class ConversionFailed(Hub3DError):
    """Converting a finished result failed; the result itself is untouched and still served."""

    status_code = 500
    code = "conversion_failed"


class FormatUnavailable(ConversionFailed):
    status_code = 503
    code = "format_unavailable"


class ModelError(Hub3DError):
    """A backend failed on one job: the job ends `failed` with this message."""

    code = "model_error"
    # True: the worker process exits after reporting, and a fresh one serves the next job.
    restart_worker = False


class NoObjectDetected(ModelError):
    code = "no_object_detected"


class OutOfMemory(ModelError):
    code = "out_of_memory"
    restart_worker = True
