"""Runtimes that load an artifact back: ``load_backend(path)`` picks one by the file's suffix.

A backend takes a float32 NCHW batch (already preprocessed) and returns (B, D) float32 embeddings.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from distill.errors import ModelError
from export.backends.base import Backend

# runtime name -> "module:Class"; the runtime modules are imported only when used.
BACKENDS = {
    "torch": "export.backends.torch_backend:TorchBackend",
    "onnxruntime": "export.backends.onnx_backend:OnnxRuntimeBackend",
    "openvino": "export.backends.openvino_backend:OpenVINOBackend",
    "tensorrt": "export.backends.tensorrt_backend:TensorRTBackend",
}
SUFFIXES = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt",
            ".plan": "tensorrt"}


def backend_class(runtime: str) -> type[Backend]:
    if runtime not in BACKENDS:
        raise ModelError(f"unknown runtime '{runtime}'; valid runtimes: {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[runtime].partition(":")
    return getattr(importlib.import_module(module), cls)


def runtime_for(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "torch"  # a run folder: its student.pt
    if p.name.endswith(".failed"):
        raise ModelError(f"'{p}' failed its parity check when exported; it is kept for inspection only. "
                         "Re-export, or rename it if you accept the measured error")
    if p.suffix not in SUFFIXES:
        raise ModelError(f"unsupported model file '{p.name}': expected one of {', '.join(sorted(SUFFIXES))} "
                         "(a student checkpoint or an exported artifact)")
    return SUFFIXES[p.suffix]


def load_backend(path: str | Path, device: str = "cpu", threads: int | None = None,
                 runtime: str | None = None) -> Backend:
    """Load an artifact (or a student checkpoint / run folder) with the runtime its suffix implies."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"'{p}' does not exist; pass an exported artifact, a student.pt or a run folder")
    return backend_class(runtime or runtime_for(p))(p, device=device, threads=threads)


__all__ = ["Backend", "BACKENDS", "load_backend", "backend_class", "runtime_for"]
