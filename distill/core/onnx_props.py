"""Read an ONNX file's ``metadata_props`` without the ``onnx`` package (or torch).

The deploy side reads an artifact's preprocessing from them before onnxruntime opens it, and the ``onnx`` package
(with its protobuf bindings) belongs to the export side. An ONNX file is one protobuf ``ModelProto`` message
(onnx/onnx.proto): this walks its top-level fields in the protobuf wire format, keeps field 14
(``repeated StringStringEntryProto metadata_props``: key = field 1, value = field 2) and seeks past everything else,
so the graph and its weights are never read into memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

METADATA_PROPS = 14  # ModelProto.metadata_props
GRAPH = 7  # ModelProto.graph: required for a model


class OnnxFormatError(ValueError):
    """The file is not a well-formed ONNX (protobuf) message: truncated, damaged or another format."""


def _varint(f: BinaryIO) -> int | None:
    """A base-128 varint, or ``None`` at the end of the file."""
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            if shift:
                raise OnnxFormatError("truncated varint")
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint too long")


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos`` of an in-memory message."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxFormatError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(data: bytes):
    """(field number, value) of the length-delimited fields of a small embedded message (a string entry)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint_at(data, pos)
        number, wire = key >> 3, key & 7
        if wire != 2:
            raise OnnxFormatError(f"unexpected wire type {wire} in a string entry")
        length, pos = _varint_at(data, pos)
        if pos + length > len(data):
            raise OnnxFormatError("string entry runs past its message")
        yield number, data[pos:pos + length]
        pos += length


def read_metadata_props(path: str | os.PathLike) -> dict[str, str]:
    """``{key: value}`` of an ONNX file's metadata_props; raises :class:`OnnxFormatError` for a file that is not a
    complete ONNX model (any field running past the end of the file, an unknown wire type, no graph)."""
    path = Path(path)
    size = path.stat().st_size
    props: dict[str, str] = {}
    seen_graph = False
    with open(path, "rb") as f:
        while True:
            key = _varint(f)
            if key is None:
                break
            number, wire = key >> 3, key & 7
            if number == 0:
                raise OnnxFormatError("field number 0")
            if wire == 0:
                if _varint(f) is None:
                    raise OnnxFormatError("truncated varint field")
            elif wire == 1 or wire == 5:
                width = 8 if wire == 1 else 4
                if f.seek(width, os.SEEK_CUR) > size:
                    raise OnnxFormatError("truncated fixed-width field")
            elif wire == 2:
                length = _varint(f)
                if length is None or f.tell() + length > size:
                    raise OnnxFormatError(f"field {number} runs past the end of the file")
                if number == METADATA_PROPS:
                    entry = dict(_fields(f.read(length)))
                    try:
                        props[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
                    except UnicodeDecodeError:
                        raise OnnxFormatError("metadata entry is not UTF-8") from None
                else:
                    seen_graph |= number == GRAPH
                    f.seek(length, os.SEEK_CUR)
            else:
                raise OnnxFormatError(f"unknown wire type {wire}")
    if not seen_graph:
        raise OnnxFormatError("no graph")
    return props
