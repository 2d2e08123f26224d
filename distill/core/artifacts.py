"""Exported artifacts as embedders, for the commands of ``distill`` that measure any model (``edgedistill eval``).

The runtimes that load an artifact belong to ``export`` (:mod:`export.backends`), downstream of ``distill``; it
registers them under the ``edgedistill.runtimes`` entry points (pyproject.toml), as it registers its commands, so
``distill`` finds them without importing its downstream package. Loading an ONNX or OpenVINO artifact this way
needs no torch: ``edgedistill eval`` runs on a device with the base install.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any


def load_artifact(path: str, device: str = "cpu", threads: int | None = None) -> Any | None:
    """The artifact at ``path`` loaded by the runtime registered for its suffix, or ``None`` when ``path`` is not an
    exported artifact (a run folder, a student.pt, a teacher spec): the caller then loads it with torch."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    for ep in entry_points(group="edgedistill.runtimes"):
        runtime = ep.load()
        if runtime.is_artifact(p):
            return runtime.load_backend(p, device=device, threads=threads)
    return None
