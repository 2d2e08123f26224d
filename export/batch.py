"""The batch an artifact was built for, and running a model over images in batches that fit it.

Torch-free (deploy side): the exporter, the int8 fallback and the on-target parity check
(:mod:`export.reference`) all batch the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from distill.core.pieces import run_in_pieces


@dataclass(frozen=True)
class BatchSpec:
    """A static batch (``static`` set) or a dynamic batch axis with a (min, opt, max) profile for TensorRT."""

    static: int | None = None
    min: int = 1
    opt: int = 8
    max: int = 64

    @property
    def dynamic(self) -> bool:
        return self.static is None

    def profile(self) -> tuple[int, int, int]:
        return (self.static,) * 3 if self.static else (self.min, self.opt, self.max)

    def to_dict(self) -> dict:
        return {"dynamic": self.dynamic, "min": self.profile()[0], "opt": self.profile()[1], "max": self.profile()[2]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "BatchSpec":
        """The spec :meth:`to_dict` wrote into an artifact's metadata (a dynamic batch when absent)."""
        if not d or d.get("dynamic", True):
            d = d or {}
            return cls(min=int(d.get("min", 1)), opt=int(d.get("opt", 8)), max=int(d.get("max", 64)))
        return cls(static=int(d["min"]))


SMALL_BATCH_IMAGES = 8  # images the gate also runs at the artifact's smallest batch


def run_smallest(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: BatchSpec) -> np.ndarray | None:
    """The first SMALL_BATCH_IMAGES images, each call at the smallest batch the artifact takes (1 for a dynamic
    axis): what ``serve`` and single-image search run, which the gate's chunked run does not. A runtime can
    compute another result there: OpenVINO 2026.4's CPU plugin did, on a dynamic-batch int8 IR at batch 1
    (docs/EXPORT.md, "The smallest batch"). None for a static batch (every call is that batch)."""
    if batch.static is not None or len(x) == 0:
        return None
    n, size = min(SMALL_BATCH_IMAGES, len(x)), max(1, batch.profile()[0])
    return run_in_pieces(fn, x[:n], size, False)


def run_batched(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: BatchSpec, chunk: int = 32) -> np.ndarray:
    """Run ``fn`` over ``x`` in chunks; a static batch is padded to its size and the padding dropped."""
    return run_in_pieces(fn, x, batch.static or min(chunk, batch.profile()[2]), batch.static is not None)
