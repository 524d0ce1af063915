"""A tiny ONNX model in u2net's place: rembg's input (1×3×320×320) and output (1×1×320×320).

It calls darker pixels the object (sigmoid of minus the channel mean), enough for the background
chain to cut something out. Written as protobuf by hand (a few fields of onnx.proto, whose
numbers are fixed) because no env here has the `onnx` package and torch's exporter needs it.
The published u2net.onnx is 176 MB; rembg checks it by md5 and fetches it from GitHub on a
mismatch, so whoever serves this file sets MODEL_CHECKSUM_DISABLED for rembg.
"""

from __future__ import annotations

SIDE = 320
_FLOAT, _INT, _INTS = 1, 2, 7  # TensorProto.FLOAT, AttributeProto.INT / INTS


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _tensor_info(name: str, dims: tuple[int, ...]) -> bytes:
    shape = b"".join(_field(1, _field(1, d)) for d in dims)  # dim { dim_value }
    tensor = _field(1, _FLOAT) + _field(2, shape)  # elem_type, shape
    return _field(1, name) + _field(2, _field(1, tensor))  # name, type { tensor_type }


def _node(op: str, inputs: list[str], outputs: list[str], *attrs: bytes) -> bytes:
    fields = [_field(1, i) for i in inputs] + [_field(2, o) for o in outputs]
    return b"".join(fields) + _field(3, op.lower()) + _field(4, op) + \
        b"".join(_field(5, a) for a in attrs)


def u2net_standin() -> bytes:
    axes = _field(1, "axes") + _field(8, 1) + _field(20, _INTS)
    keepdims = _field(1, "keepdims") + _field(3, 1) + _field(20, _INT)
    graph = (_field(1, _node("ReduceMean", ["input.1"], ["mean"], axes, keepdims))
             + _field(1, _node("Neg", ["mean"], ["darkness"]))
             + _field(1, _node("Sigmoid", ["darkness"], ["mask"]))
             + _field(2, "u2net-standin")
             + _field(11, _tensor_info("input.1", (1, 3, SIDE, SIDE)))
             + _field(12, _tensor_info("mask", (1, 1, SIDE, SIDE))))
    # ir_version 7, producer_name, graph, opset_import { version 13 }
    return _field(1, 7) + _field(2, "hub3d tests") + _field(7, graph) + _field(8, _field(2, 13))
