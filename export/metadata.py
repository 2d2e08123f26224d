"""Artifact metadata: preprocessing, embedding size, precision, batch profile, provenance and parity.

ONNX files carry it in their ``metadata_props`` (key ``edgedistill``), so a single .onnx file is
self-describing; other formats get a sidecar JSON named like the artifact up to its first dot
(``student-openvino-fp16.xml`` -> ``student-openvino-fp16.json``), the same rule as the test bed's teachers.
"""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from distill.core.atomic import atomic_write_json
from distill.core.onnx_props import OnnxFormatError, read_metadata_props
from distill.core.preprocess import ONNX_METADATA_KEY as METADATA_KEY  # the teacher loader reads it too
from distill.core.preprocess import read_sidecar, sidecar_path
from export.errors import ExportError

VERSIONED = ("edgedistill", "torch", "onnx", "onnxruntime", "openvino", "nncf", "tensorrt", "onnxslim")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            found[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_metadata(artifact: Path, meta: dict[str, Any]) -> Path:
    """Store ``meta`` with the artifact (inside an ONNX file, else as its sidecar); return where it went."""
    if artifact.suffix == ".onnx":
        import onnx

        from export.onnx_io import save_onnx

        model = onnx.load(str(artifact))
        props = {p.key: p.value for p in model.metadata_props}
        props[METADATA_KEY] = json.dumps(meta)
        del model.metadata_props[:]
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
        save_onnx(model, artifact)
        return artifact
    path = sidecar_path(artifact)
    atomic_write_json(path, meta)
    return path


def read_metadata(artifact: str | Path) -> dict[str, Any] | None:
    """The artifact's metadata: edgedistill's own, else a plain sidecar (input_size/mean/std), else ``None``."""
    artifact = Path(artifact)
    if artifact.suffix == ".onnx":
        try:  # read without the onnx package: the deploy side has only onnxruntime (distill.core.onnx_props)
            props = read_metadata_props(artifact)
        except (OSError, OnnxFormatError) as exc:
            raise ExportError(f"'{artifact}' is not a readable ONNX file ({exc}); re-export it") from None
        if METADATA_KEY in props:
            try:
                return json.loads(props[METADATA_KEY])
            except ValueError:
                raise ExportError(f"'{artifact}' carries damaged edgedistill metadata (not JSON); "
                                  "re-export it") from None
    return read_sidecar(artifact)
