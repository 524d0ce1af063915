"""The model worker process: `python -m hub3d.workers.child --model SPEC --device DEV`.

It loads one backend once, then runs jobs sent over stdin, answering on the original stdout.
Anything the model libraries print goes to stderr, so it can never corrupt the protocol.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub3d.errors import ModelError
from hub3d.models.base import Backend, GenerateParams, JobInput
from hub3d.models.registry import load_backend_class
from hub3d.workers.lifeline import die_with_parent
from hub3d.workers.protocol import (
    Done,
    Exit,
    Failed,
    LoadFailed,
    Loading,
    Message,
    ProtocolError,
    Ready,
    Run,
    Stage,
    decode,
    write_message,
)

__all__ = ["main", "run_job"]


class _StageClock:
    """Turns stage reports into messages and per-stage durations."""

    def __init__(self, send: Callable[[Message], None], job_id: str) -> None:
        self._send, self._job_id = send, job_id
        self.timings: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.perf_counter()

    def __call__(self, stage: str, message: str = "") -> None:
        self._close()
        self._stage, self._since = stage, time.perf_counter()
        self._send(Stage(self._job_id, stage, message))

    def _close(self) -> None:
        if self._stage is not None:
            spent = time.perf_counter() - self._since
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + spent, 6)

    def finish(self) -> dict[str, float]:
        self._close()
        self._stage = None
        return self.timings


def stored_params(cls: type[Backend], params: dict[str, Any]) -> GenerateParams:
    """A queued job's params. A job queued by an older server may carry parameters this model
    no longer declares; it always ignored them, so they are dropped, not a reason to fail."""
    return cls.params_model.model_validate(
        {k: v for k, v in params.items() if k in cls.params_model.model_fields})


def _spent(clock: _StageClock, started: float) -> dict[str, float]:
    """The job's stage durations so far, and its total: a failed job keeps them too."""
    timings = clock.finish()
    timings["total"] = round(time.perf_counter() - started, 6)
    return timings


def run_job(backend: Backend, cls: type[Backend], msg: Run,
            send: Callable[[Message], None]) -> bool:
    """Run one job whose files are in `msg.job_dir`, reporting through `send` (Stage*, then Done
    or Failed); returns False when the worker must exit afterwards. The process worker and the
    Ray actor both run jobs through it."""
    job_id = msg.job_id
    clock = _StageClock(send, job_id)
    started = time.perf_counter()
    try:
        job_dir = Path(msg.job_dir)
        job = JobInput(
            job_id=job_id,
            job_dir=job_dir,
            image_path=job_dir / "input.png",
            params=stored_params(cls, msg.params),
            mask_path=job_dir / "mask.png" if msg.has_mask else None,
        )
        out = backend.run(job, clock)
    except ModelError as exc:
        send(Failed(job_id, exc.message, exc.code, exc.restart_worker, _spent(clock, started)))
        return not exc.restart_worker
    except Exception as exc:  # a model bug must fail the job, not the worker
        traceback.print_exc()
        send(Failed(job_id, f"{type(exc).__name__}: {exc}", timings=_spent(clock, started)))
        return True
    timings = _spent(clock, started)
    send(Done(job_id, out.result_path.name, out.media_type, out.metadata, timings))
    if out.after is not None:
        try:
            out.after()
        except Exception:  # an extra file is optional: log it, keep the job and the worker
            traceback.print_exc()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub3d-worker")
    parser.add_argument("--model", required=True, help="model name or name=module:Class")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    die_with_parent()
    faulthandler.enable()  # a segfault leaves a Python traceback in the worker log
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: Message) -> None:
        write_message(proto_out, message)

    send(Loading())
    started = time.perf_counter()
    try:
        cls = load_backend_class(args.model)
        backend = cls()
        backend.load(args.device)
    except BaseException as exc:  # noqa: BLE001 — report any load failure, then exit
        traceback.print_exc()
        message = exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        send(LoadFailed(message))
        return 1
    send(Ready(round(time.perf_counter() - started, 3), args.device))

    for line in sys.stdin.buffer:
        msg = decode(line)  # a line that is no message raises: the control plane sees the exit
        if isinstance(msg, Exit):
            break
        if not isinstance(msg, Run):
            raise ProtocolError(f"the worker takes Run and Exit, not {type(msg).__name__}")
        if not run_job(backend, cls, msg, send):
            return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
