"""Runtimes that load an artifact back: ``load_backend(path)`` picks one by the file's suffix.

A backend takes a float32 NCHW batch (already preprocessed) and returns (B, D) float32 embeddings.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from distill.core.errors import ModelError
from export.backends.base import Backend
from export.formats import FORMATS, artifact_suffixes

TORCH_BACKEND = "export.backends.torch_backend:TorchBackend"  # a student checkpoint or run folder


def backends() -> dict[str, str]:
    """Runtime name -> "module:Class": PyTorch plus the runtime of every row of :data:`export.formats.FORMATS`.
    The runtime modules are imported only when used."""
    return {"torch": TORCH_BACKEND, **{fmt.runtime: fmt.backend for fmt in FORMATS.values()}}


def suffixes() -> dict[str, str]:
    """File suffix -> runtime: student checkpoints plus every format's artifact suffixes."""
    return {".pt": "torch", ".pth": "torch", **artifact_suffixes()}


def backend_class(runtime: str) -> type[Backend]:
    table = backends()
    if runtime not in table:
        raise ModelError(f"unknown runtime '{runtime}'; valid runtimes: {', '.join(table)}")
    module, _, cls = table[runtime].partition(":")
    return getattr(importlib.import_module(module), cls)


def runtime_for(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir():
        return "torch"  # a run folder: its student.pt
    if p.name.endswith(".failed"):
        raise ModelError(f"'{p}' failed its parity check when exported; it is kept for inspection only. "
                         "Re-export, or rename it if you accept the measured error")
    table = suffixes()
    if p.suffix not in table:
        raise ModelError(f"unsupported model file '{p.name}': expected one of {', '.join(sorted(table))} "
                         "(a student checkpoint or an exported artifact)")
    return table[p.suffix]


def is_artifact(path: str | Path) -> bool:
    """Whether ``path`` is a file of an export format (not a student checkpoint): what the ``edgedistill.runtimes``
    entry point answers for ``edgedistill eval`` (distill.core.artifacts)."""
    return Path(path).suffix in artifact_suffixes()


def load_backend(path: str | Path, device: str = "cpu", threads: int | None = None,
                 runtime: str | None = None, variant: str | None = None) -> Backend:
    """Load an artifact (or a student checkpoint / run folder) with the runtime its suffix implies; ``variant``
    picks how a PyTorch student runs (export.backends.torch_backend: 'eager', 'cudagraphs-fp16', ...)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"'{p}' does not exist; pass an exported artifact, a student.pt or a run folder")
    cls = backend_class(runtime or runtime_for(p))
    if variant is not None and variant != "eager":
        return cls(p, device=device, threads=threads, variant=variant)
    return cls(p, device=device, threads=threads)


__all__ = ["Backend", "backends", "suffixes", "load_backend", "backend_class", "runtime_for", "is_artifact"]
