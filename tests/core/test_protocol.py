"""The worker protocol: message classes per direction, one decoder, and a real child on the wire."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub3d.workers.protocol import (
    Cancel,
    Done,
    Exit,
    Failed,
    LoadFailed,
    Loading,
    ProtocolError,
    Ready,
    Run,
    Stage,
    decode,
    encode,
)
from tests.core.harness import SLOW
from tests.servers import REPO

MESSAGES = [Run("j", "/tmp/j", {"seed": 1}, True), Cancel("j"), Exit(), Loading(),
            Ready(1.5, "cpu"), Ready(2.0, "cuda:0", 0.6, 4),
            LoadFailed("no weights"), Stage("j", "inference", "step 1"),
            Done("j", "result.glb", "model/gltf-binary", {"vertices": 8}, {"inference": 0.1}),
            Failed("j", "out of memory", "out_of_memory", True, {"inference": 0.2})]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire(message: object) -> None:
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == message


def test_the_wire_format_is_the_tagged_json_line() -> None:
    assert encode(Stage("j", "inference")) == (
        b'{"type":"stage","job_id":"j","stage":"inference","message":""}\n')
    assert decode(b'{"op":"exit"}') == Exit()


@pytest.mark.parametrize("line", [b"not json", b"[1]", b'{"type":"teleport"}',
                                  b'{"type":"done","job_id":"j"}', b'{"op":"run"}'])
def test_anything_else_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(line)


@pytest.mark.parametrize(("line", "field"), [
    (b'{"type":"done","job_id":1,"result":"r.glb","media_type":"m"}', "job_id"),
    (b'{"type":"done","job_id":"j","result":null,"media_type":"m"}', "result"),
    (b'{"type":"done","job_id":"j","result":"r","media_type":"m","timings":"x"}', "timings"),
    (b'{"type":"done","job_id":"j","result":"r","media_type":"m","metadata":["a"]}',
     "metadata"),
    (b'{"type":"done","job_id":"j","result":"r","media_type":"m","timings":{"a":"1"}}',
     "timings.a"),
    (b'{"type":"failed","job_id":"j","error":"e","restart":"yes"}', "restart"),
    (b'{"type":"stage","job_id":"j","stage":7}', "stage"),
    (b'{"type":"ready","load_s":"soon"}', "load_s"),
    (b'{"op":"run","job_id":"j","job_dir":"/d","params":"seed=1"}', "params"),
])
def test_a_message_with_a_field_of_the_wrong_type_is_refused_naming_it(line: bytes,
                                                                         field: str) -> None:
    with pytest.raises(ProtocolError, match=rf"bad \w+ message: {field}: "):
        decode(line)


def test_a_real_worker_answers_run_and_refuses_a_message_meant_for_the_control_plane(
        tmp_path: object) -> None:
    from pathlib import Path

    from tests.core.harness import PNG

    job_dir = Path(str(tmp_path)) / "job"
    job_dir.mkdir()
    (job_dir / "input.png").write_bytes(PNG)
    lines = encode(Run("j1", str(job_dir), {"sleep_s": 0.0})) + encode(Stage("j1", "x"))
    proc = subprocess.run([sys.executable, "-m", "hub3d.workers.child", "--model", SLOW],
                          input=lines, capture_output=True, cwd=REPO, timeout=60)
    answers = [decode(line) for line in proc.stdout.splitlines()]
    assert [type(a) for a in answers] == [Loading, Ready, Stage, Stage, Stage, Done], answers
    done = answers[-1]
    assert isinstance(done, Done) and done.result == "result.glb" and "total" in done.timings
    assert proc.returncode != 0 and b"takes Run, Cancel and Exit, not Stage" in proc.stderr
