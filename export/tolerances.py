"""Parity tolerances per precision, as data.

An artifact passes when its embeddings of real images keep, against the PyTorch student,
* ``min_cosine``: the worst image's cosine similarity at least this, and
* ``min_overlap``: on average this fraction of each image's 10 nearest neighbours.

Absolute errors are reported but not gated: embeddings of an untrained EfficientNet-B0 are ~1e-5 in magnitude,
so only relative measures carry over between students. The numbers are tuned from the measurements in
docs/EXPORT.md (worst case over the three students, trained and untrained, 32 and 224 px), with headroom:
fp32 graphs differ from eager PyTorch only by operator reordering (cosine >= 0.999999 measured); fp16 by
rounding of weights and activations; int8 by quantisation noise, where the neighbour structure is what a
retrieval user sees.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    min_overlap: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_cosine=0.9999, min_overlap=0.98),
    "fp16": Tolerance(min_cosine=0.999, min_overlap=0.9),
    "int8": Tolerance(min_cosine=0.95, min_overlap=0.8),
}
