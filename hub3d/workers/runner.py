"""Jobs on one loaded backend: the code every kind of worker shares (a process of the local
pool, a Ray actor). `load_backend` loads (and warms up) a model; `JobRunner.run` runs one job
and reports through `send` — Stage*, then Done | Failed — and may run in several threads at
once over the one loaded model; `JobRunner.cancel` stops a job at its next stage report.

Whatever a backend does wrong is its job's failure, never the worker's: an exception, a
result of the wrong types, a result file it never wrote — each ends the job `failed` with a
reason that names the model and the code `internal`.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub3d.errors import ErrorCode, ModelError
from hub3d.fsutil import disk_full
from hub3d.models.base import Backend, GenerateParams, JobInput, JobOutput
from hub3d.models.registry import load_backend_class
from hub3d.workers.protocol import Done, Failed, Message, Ready, Run, Stage

__all__ = ["JobCanceled", "JobRunner", "load_backend", "stored_params"]

Send = Callable[[Message], None]


def _log_traceback() -> None:
    """To the worker log; a log on a full disk must not take the job's answer with it."""
    try:
        traceback.print_exc()
    except OSError:
        pass


class JobCanceled(Exception):
    """Raised at a stage report of a job canceled meanwhile."""


class _StageClock:
    """Turns stage reports into messages and per-stage durations; stops a canceled job."""

    def __init__(self, send: Send, job_id: str, canceled: Callable[[], bool]) -> None:
        self._send, self._job_id, self._canceled = send, job_id, canceled
        self.timings: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.perf_counter()

    def __call__(self, stage: str, message: str = "") -> None:
        if self._canceled():
            raise JobCanceled(self._job_id)
        self._close()
        self._stage, self._since = stage, time.perf_counter()
        self._send(Stage(self._job_id, stage, message))

    def _close(self) -> None:
        if self._stage is not None:
            spent = time.perf_counter() - self._since
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + spent, 6)

    def finish(self, started: float) -> dict[str, float]:
        """The job's stage durations so far, and its total: a failed job keeps them too."""
        self._close()
        self._stage = None
        return {**self.timings, "total": round(time.perf_counter() - started, 6)}


def stored_params(cls: type[Backend], params: dict[str, Any]) -> GenerateParams:
    """A queued job's params. A job queued by an older server may carry parameters this model
    no longer declares; it always ignored them, so they are dropped, not a reason to fail."""
    return cls.params_model.model_validate(
        {k: v for k, v in params.items() if k in cls.params_model.model_fields})


def _output_problem(out: object, job_dir: Path) -> str | None:
    """What is wrong with what `run` returned; None when it is a complete result."""
    if not isinstance(out, JobOutput):
        return f"returned {type(out).__name__}, not a JobOutput"
    if not isinstance(out.result_path, Path):
        return f"returned result_path {out.result_path!r}, not a Path"
    if not isinstance(out.media_type, str) or not out.media_type:
        return f"returned media_type {out.media_type!r}, not a media type string"
    if not isinstance(out.metadata, dict) or not all(isinstance(k, str) for k in out.metadata):
        return f"returned metadata {str(out.metadata)[:80]!r}, not a dict with string keys"
    if out.after is not None and not callable(out.after):
        return f"returned after={out.after!r}, not a callable"
    if out.result_path.resolve().parent != job_dir.resolve():
        return f"returned a result outside its job folder ({out.result_path})"
    if not out.result_path.is_file():
        return f"returned result {out.result_path.name} but never wrote it"
    return None


class JobRunner:
    """Runs jobs on one loaded backend; thread-safe: several jobs may run at once."""

    def __init__(self, backend: Backend, cls: type[Backend], send: Send, model: str) -> None:
        self.backend, self.cls, self.model = backend, cls, model
        self._send_lock = threading.Lock()
        self._raw_send = send
        self._canceled: set[str] = set()

    def send(self, message: Message) -> None:
        with self._send_lock:  # one message per line, whichever thread sends
            self._raw_send(message)

    def cancel(self, job_id: str) -> None:
        self._canceled.add(job_id)

    def _bug(self, job_id: str, what: str, timings: dict[str, float]) -> Failed:
        return Failed(job_id, f"server-side bug in model '{self.model}': its backend {what}. "
                      "Report it with this job's id; the next job is not affected.",
                      ErrorCode.INTERNAL.value, False, timings)

    def run(self, msg: Run) -> bool:
        """Run one job to its end message; False when the worker should be replaced (OOM)."""
        try:
            return self._run(msg)
        except BaseException as exc:  # the job must still end, whatever escaped
            try:
                self.send(self._bug(msg.job_id, f"could not report its end ({exc!r})", {}))
            except Exception:
                pass
            if not isinstance(exc, Exception):
                raise
            return True

    def _run(self, msg: Run) -> bool:
        job_id, job_dir = msg.job_id, Path(msg.job_dir)
        clock = _StageClock(self.send, job_id, lambda: job_id in self._canceled)
        started = time.perf_counter()
        try:
            job = JobInput(job_id=job_id, job_dir=job_dir, image_path=job_dir / "input.png",
                           params=stored_params(self.cls, msg.params),
                           mask_path=job_dir / "mask.png" if msg.has_mask else None)
            out = self.backend.run(job, clock)
            problem = _output_problem(out, job_dir)
            end: Message = (self._bug(job_id, problem, clock.finish(started)) if problem else
                            Done(job_id, out.result_path.name, out.media_type, out.metadata,
                                 clock.finish(started)))
        except JobCanceled:
            end = Failed(job_id, "canceled by request", ErrorCode.CANCELED.value, False,
                         clock.finish(started))
        except ModelError as exc:
            self.send(Failed(job_id, exc.message, exc.code, exc.restart_worker,
                             clock.finish(started)))
            return not exc.restart_worker
        except Exception as exc:  # a bug in the backend fails its job, not the worker
            _log_traceback()
            end = (Failed(job_id, f"the data dir ran out of space while the job ran ({exc}); "
                          "free some space and submit again", ErrorCode.STORAGE_FULL.value,
                          False, clock.finish(started)) if disk_full(exc) else
                   self._bug(job_id, f"raised {type(exc).__name__}: {exc}",
                             clock.finish(started)))
        finally:
            self._canceled.discard(job_id)
        try:
            self.send(end)
        except Exception as exc:  # e.g. metadata the protocol cannot carry
            _log_traceback()
            self.send(self._bug(job_id, f"returned a result the worker cannot report ({exc})",
                                {}))
            return True
        if isinstance(end, Done) and out.after is not None:
            try:
                out.after()
            except Exception:  # an extra file is optional: log it, keep the job and the worker
                _log_traceback()
        return True


def load_backend(spec: str, device: str, *, warmup: str = "auto",
                 jobs: int = 1) -> tuple[Backend, type[Backend], Ready]:
    """Import, construct and load the backend; warm it up where that pays (`auto`: on the
    device kinds the backend names), or always (`on`), or never (`off`)."""
    started = time.perf_counter()
    cls = load_backend_class(spec)
    backend = cls()
    backend.load(device)
    load_s = round(time.perf_counter() - started, 3)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    warm = warmup == "on" or (warmup == "auto" and kind in cls.warmup_on)
    warmup_s = None
    if warm and type(backend).warmup is not Backend.warmup:
        started = time.perf_counter()
        backend.warmup()
        warmup_s = round(time.perf_counter() - started, 3)
    return backend, cls, Ready(load_s, device, warmup_s, jobs)
