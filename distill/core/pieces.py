"""Running a model over a batch in pieces of a given size: a fixed-batch ONNX file (``torch.onnx.export``'s
default is a batch of 1), a static-batch export, a TensorRT profile's maximum. Torch-free: the export side, the
runtime backends and the ONNX teacher share it."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def chunks(images: np.ndarray, size: int, static: bool):
    """(batch, n_real) pieces of ``images``; with a static batch the last piece is padded to ``size``."""
    for i in range(0, len(images), size):
        part = images[i:i + size]
        n = len(part)
        if static and n < size:
            part = np.concatenate([part, np.repeat(part[-1:], size - n, axis=0)])
        yield part, n


def run_in_pieces(fn: Callable[[np.ndarray], Any], x: np.ndarray, size: int, static: bool) -> np.ndarray:
    """``fn`` over ``x`` in pieces of ``size`` (the last padded when ``static``), the padding's rows dropped."""
    return np.concatenate([np.asarray(fn(part))[:n] for part, n in chunks(x, size, static)])
