"""The model worker process: `python -m hub3d.workers --model SPEC --device DEV`.

It loads one backend once, then runs the jobs sent over stdin — up to `--jobs` at once, in
threads over the one loaded model — answering on the original stdout. Anything the model
libraries print goes to stderr, so it can never corrupt the protocol.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import IO

from hub3d.errors import ModelError
from hub3d.workers.lifeline import die_with_parent
from hub3d.workers.protocol import (
    Cancel,
    Exit,
    LoadFailed,
    Loading,
    Message,
    ProtocolError,
    Run,
    decode,
    write_message,
)
from hub3d.workers.runner import JobRunner, load_backend

__all__ = ["main", "protocol_stream"]

# The pipe the control plane reads; the tests' fault injection writes to it directly.
protocol_stream: IO[bytes] | None = None


def main(argv: list[str] | None = None) -> int:
    global protocol_stream
    parser = argparse.ArgumentParser(prog="hub3d-worker")
    parser.add_argument("--model", required=True, help="model name or name=module:Class")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once on the one model")
    parser.add_argument("--warmup", choices=("auto", "on", "off"), default="auto")
    args = parser.parse_args(argv)

    die_with_parent()
    faulthandler.enable()  # a segfault leaves a Python traceback in the worker log
    protocol_stream = proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: Message) -> None:
        write_message(proto_out, message)

    send(Loading())
    try:
        backend, cls, ready = load_backend(args.model, args.device, warmup=args.warmup,
                                           jobs=args.jobs)
    except BaseException as exc:  # noqa: BLE001 — report any load failure, then exit
        traceback.print_exc()
        message = exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        send(LoadFailed(message))
        return 1
    runner = JobRunner(backend, cls, send, args.model.partition("=")[0])
    runner.send(ready)
    with ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="hub3d-job") as jobs:
        for line in sys.stdin.buffer:
            msg = decode(line)  # a line that is no message raises: the control plane sees it
            if isinstance(msg, Exit):
                break
            if isinstance(msg, Cancel):
                runner.cancel(msg.job_id)
            elif isinstance(msg, Run):
                jobs.submit(runner.run, msg)
            else:
                raise ProtocolError(f"the worker takes Run, Cancel and Exit, not "
                                    f"{type(msg).__name__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
