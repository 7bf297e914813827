"""An ONNX file's metadata and input/output tensor shapes, read with the standard library only.

The status report lists the model cards (stored in the ONNX metadata) where onnxruntime and numpy may be missing,
so it cannot ask onnxruntime. An ONNX file is one protobuf ``ModelProto``; only the few fields read here are
decoded, and the weights (most of the file) are skipped over with seeks, never read.
"""

from __future__ import annotations

import io
from pathlib import Path

# ModelProto, GraphProto, ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto and its Dimension, as
# numbered in onnx/onnx.proto (stable: protobuf field numbers never change).
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_TENSOR_NAME = 8
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class OnnxFileError(ValueError):
    """The file is not an ONNX model this reader understands."""


class _MalformedError(Exception):
    """The bytes do not decode as protobuf."""


def read_metadata(path: Path | str) -> dict:
    """The model's metadata_props as a dict of strings (the model card is one of them)."""
    return read(path)[0]


def read(path: Path | str) -> tuple[dict, list, list]:
    """(metadata, inputs, outputs) of the model at ``path``; inputs and outputs are (name, shape) pairs in the form
    core.extract.modelcard.read_card takes, a dimension being an int, a symbolic name or None. Inputs that are
    weights (initializers, listed as inputs by old exporters) are left out. Raises OnnxFileError."""
    metadata, inputs, outputs, weights = {}, [], [], set()
    try:
        with open(path, "rb") as stream:
            end = stream.seek(0, io.SEEK_END)
            stream.seek(0)
            for field, _, span in _fields(stream, end):
                if field == _MODEL_METADATA:
                    entry = _message(_read(stream, span))
                    metadata[_text(entry.get(1, [b""])[0])] = _text(entry.get(2, [b""])[0])
                elif field == _MODEL_GRAPH:
                    for graph_field, _, graph_span in _fields(stream, span[0] + span[1], span[0]):
                        if graph_field in (_GRAPH_INPUT, _GRAPH_OUTPUT):
                            value = _value_info(_read(stream, graph_span))
                            (inputs if graph_field == _GRAPH_INPUT else outputs).append(value)
                        elif graph_field == _GRAPH_INITIALIZER:
                            weights.add(_tensor_name(stream, graph_span))
    except OSError as error:
        raise OnnxFileError(f"{path} cannot be read: {error.strerror or error}") from error
    except (_MalformedError, IndexError, KeyError, UnicodeDecodeError, EOFError) as error:
        raise OnnxFileError(f"{path} is not an ONNX model (its protobuf does not decode: {error})") from error
    if not inputs and not outputs and not metadata:
        raise OnnxFileError(f"{path} is not an ONNX model (no graph and no metadata in it)")
    return metadata, [i for i in inputs if i[0] not in weights], outputs


# -- the protobuf wire format ----------------------------------------------------------------------------------------

def _varint(stream) -> int:
    result, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise EOFError("the file ends inside a number")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _MalformedError("a number in the file is longer than 64 bits")


def _fields(stream, end: int, start: int | None = None):
    """(field number, wire type, value) for each field from ``start`` (the current position) to ``end``: the number
    of a varint, (offset, length) of a length-delimited field. The caller may read inside a span: the next field is
    found from the span's end."""
    if start is not None:
        stream.seek(start)
    while stream.tell() < end:
        tag = _varint(stream)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            yield field, wire, _varint(stream)
        elif wire == _FIXED64:
            stream.seek(8, io.SEEK_CUR)
        elif wire == _FIXED32:
            stream.seek(4, io.SEEK_CUR)
        elif wire == _BYTES:
            length = _varint(stream)
            offset = stream.tell()
            if offset + length > end:
                raise EOFError("a field runs past the end of its message")
            yield field, wire, (offset, length)
            stream.seek(offset + length)
        else:
            raise _MalformedError(f"unexpected protobuf wire type {wire} (field {field})")


def _read(stream, span) -> bytes:
    stream.seek(span[0])
    data = stream.read(span[1])
    if len(data) != span[1]:
        raise EOFError("the file ends inside a field")
    return data


def _message(data: bytes) -> dict:
    """A small message's fields: number -> list of values (ints, or bytes for length-delimited fields)."""
    stream = io.BytesIO(data)
    fields: dict = {}
    for field, wire, value in _fields(stream, len(data)):
        fields.setdefault(field, []).append(_read(stream, value) if wire == _BYTES else value)
    return fields


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _signed(value: int) -> int:
    """An int64 read as a varint: negative numbers arrive as their 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _value_info(data: bytes) -> tuple[str, list]:
    """A ValueInfoProto as (name, shape); the shape is [] for a tensor of unknown rank or a non-tensor."""
    info = _message(data)
    name = _text(info.get(1, [b""])[0])
    type_proto = _message(info[2][0]) if 2 in info else {}
    tensor = _message(type_proto[1][0]) if 1 in type_proto else {}
    shape = _message(tensor[2][0]) if 2 in tensor else {}
    dims = []
    for dim_data in shape.get(1, []):
        dim = _message(dim_data)
        if 1 in dim:
            dims.append(_signed(dim[1][0]))
        elif 2 in dim:
            dims.append(_text(dim[2][0]))
        else:
            dims.append(None)
    return name, dims


def _tensor_name(stream, span) -> str:
    """A TensorProto's name, read without its data."""
    for field, wire, value in _fields(stream, span[0] + span[1], span[0]):
        if field == _TENSOR_NAME and wire == _BYTES:
            return _text(_read(stream, value))
    return ""
