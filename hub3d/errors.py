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
        ├── BadInput             the image or parameters cannot be processed
        ├── NoObjectDetected
        └── OutOfMemory          also replaces the worker, so its memory is really freed

A failed job carries one ErrorCode beside its message: what a program acts on (another photo,
retry later, report a bug). `ErrorCode.advice` is the next step a person reads.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "BadInput",
    "ConversionFailed",
    "ErrorCode",
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


class ErrorCode(str, Enum):
    """Why a job failed, for programs: the client's exit status and the page's advice."""

    BAD_INPUT = "bad_input"
    NO_OBJECT_DETECTED = "no_object_detected"
    MODEL_ERROR = "model_error"
    OUT_OF_MEMORY = "out_of_memory"
    MODEL_UNAVAILABLE = "model_unavailable"
    WORKER_CRASHED = "worker_crashed"
    INTERRUPTED = "interrupted"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    STORAGE_FULL = "storage_full"
    INTERNAL = "internal"

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_ADVICE = {
    ErrorCode.BAD_INPUT: "send another image, or other parameters",
    ErrorCode.NO_OBJECT_DETECTED: "send a photo with one clear object on a plain background, "
                                  "or a mask",
    ErrorCode.MODEL_ERROR: "the model could not make this one: the message says why; try "
                           "another image or other parameters",
    ErrorCode.OUT_OF_MEMORY: "the card is full: retry later, or with a smaller "
                             "texture_resolution",
    ErrorCode.MODEL_UNAVAILABLE: "the model cannot run on this server now: fix its setup "
                                 "(`hub3d doctor`) or use another model",
    ErrorCode.WORKER_CRASHED: "retry; if it happens again, report it with the worker log",
    ErrorCode.INTERRUPTED: "the server restarted while the job ran: submit it again",
    ErrorCode.TIMEOUT: "the job ran longer than the server allows: retry later, or with "
                       "lighter parameters",
    ErrorCode.CANCELED: "nothing to do: it was canceled by request",
    ErrorCode.STORAGE_FULL: "the server's disk is full: retry once space is freed",
    ErrorCode.INTERNAL: "a bug in the server or the model's backend: report it with the job "
                        "id and the server log",
}


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

    code = ErrorCode.MODEL_ERROR.value
    # True: the worker is replaced once its other jobs end, and a fresh one serves the next.
    restart_worker = False


class BadInput(ModelError):
    code = ErrorCode.BAD_INPUT.value


class NoObjectDetected(ModelError):
    code = ErrorCode.NO_OBJECT_DETECTED.value


class OutOfMemory(ModelError):
    code = ErrorCode.OUT_OF_MEMORY.value
    restart_worker = True
