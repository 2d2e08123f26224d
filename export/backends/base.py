"""What every runtime backend offers: load in the constructor, embed in ``__call__``.

Deploy side: this module and the runtime backends (onnxruntime, OpenVINO) import no torch, so an exported
artifact runs on a device with the base install (tests/test_architecture.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from distill.core.atomic import sha256_file
from distill.core.embeddings import as_float32
from distill.core.errors import DataError, ModelError
from distill.core.images import UNREADABLE, load_rgb, resize_center_crop
from distill.core.preprocess import Preprocess


class Backend:
    """A loaded artifact. ``backend(x)`` takes a float32 NCHW batch, already preprocessed (numpy or torch),
    and returns (B, D) float32 embeddings as numpy; :meth:`embed_images` applies the artifact's own
    preprocessing to image files first."""

    runtime = "?"

    def __init__(self, path: str | Path, meta: dict[str, Any] | None):
        self.path = Path(path)
        if meta is None or "input_size" not in meta and "preprocess" not in meta:
            raise ModelError(f"'{self.path}' carries no preprocessing metadata (no edgedistill metadata or sidecar "
                             f"JSON); export it with 'edgedistill export' or write a sidecar with input_size/mean/std")
        self.meta = meta
        self.preprocess = Preprocess.from_dict(meta.get("preprocess", meta))
        self.precision = meta.get("precision", "fp32")
        self.embedding_dim = int(meta.get("embedding_dim", 0))
        self.name = f"{self.runtime}-{self.precision}"

    def __call__(self, x) -> np.ndarray:
        raise NotImplementedError

    def bound(self, x: np.ndarray):
        """A no-argument callable running the model on ``x`` with its input (and, where the runtime allows, its
        output) bound once: what ``bench`` times, so that the figure is the model's, not the harness's (no input
        conversion or output copy per call). The default is ``self(x)``; runtimes with binding APIs override it."""
        x = self.as_numpy(x)
        return lambda: self(x)

    @staticmethod
    def weights_beside(path: str | Path, kind: str, suffix: str = ".bin") -> Path:
        """The weights file a two-file format keeps beside its graph (OpenVINO's and ncnn's .bin); a missing one
        is a ModelError naming both files."""
        path = Path(path)
        weights = path.with_suffix(suffix)
        if not weights.is_file():
            raise ModelError(f"'{path.name}' has no weights file '{weights.name}' beside it; {kind} is the "
                             f"{path.suffix} and its {suffix}: copy both")
        return weights

    def synchronize(self) -> None:
        """Wait for work the runtime queued on a device (bench calls it inside the timed region); a no-op for
        runtimes whose calls return when their output is ready."""

    # The distill embedder interface, so that distill.evaluate can measure any backend.
    kind = "artifact"

    @staticmethod
    def as_numpy(x) -> np.ndarray:
        """A batch (numpy array or torch tensor) as a C-contiguous float32 array: runtimes read the buffer as
        NCHW whatever its strides say, so a channels-last view would be read as garbage."""
        return np.ascontiguousarray(as_float32(x))

    def load_images(self, paths: Iterable[str | Path]) -> np.ndarray:
        """Decode and preprocess image files into a float32 NCHW batch; an unreadable file is a DataError."""
        pre, arrays = self.preprocess, []
        for p in paths:
            try:
                img = resize_center_crop(load_rgb(p), pre.input_size, pre.crop_pct)
            except UNREADABLE as exc:
                raise DataError(f"cannot read image '{p}' ({type(exc).__name__}); pass a JPEG, PNG, WebP or BMP "
                                "file") from None
            arrays.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
        return pre.numpy_from_uint8(np.stack(arrays))

    def embed_images(self, paths: list[str | Path], batch_size: int = 32) -> np.ndarray:
        out = [self(self.load_images(paths[i:i + batch_size])) for i in range(0, len(paths), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.embedding_dim), np.float32)

    def files(self) -> list[Path]:
        """Every file the artifact consists of (for its size and fingerprint)."""
        return [self.path]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files())

    def fingerprint(self) -> str:
        """SHA-256 of the artifact's files: an index built with one model refuses another."""
        import hashlib

        h = hashlib.sha256()
        for f in self.files():
            h.update(sha256_file(f).encode())
        return h.hexdigest()
