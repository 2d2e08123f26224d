"""ONNX files for the exporter's own use: written atomically, checked by onnx.checker, and run in a quiet,
thread-capped onnxruntime CPU session (simplification checks, int8 probes and candidates)."""
from __future__ import annotations

from pathlib import Path

from distill.core.atomic import atomic_write_bytes
from distill.core.threads import ort_session_options
from export.errors import ExportError


def save_onnx(model, path: Path) -> None:
    """Serialise an ONNX ModelProto atomically (single file; students are far below the 2 GB protobuf limit)."""
    atomic_write_bytes(path, model.SerializeToString())


def check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected '{path.name}': {str(exc).splitlines()[0]}") from None


def cpu_session(path_or_bytes):
    """An onnxruntime CPU session of a file or serialised model."""
    import onnxruntime as ort

    opts = ort_session_options()
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
