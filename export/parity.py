"""The parity gate: an artifact's embeddings against the PyTorch student's, on the same real images.

Reported: max / mean / p99 absolute error, min and mean cosine similarity, and neighbour overlap@10 (for each
image, the fraction of its 10 nearest neighbours among the parity images that both models agree on: what a
retrieval user would notice). Gated: worst and mean cosine and neighbour overlap, per precision (export.tolerances).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from distill.core.embeddings import cosine_rows, neighbour_overlap
from export.tolerances import TOLERANCES, Tolerance


@dataclass
class ParityResult:
    max_abs: float
    mean_abs: float
    p99_abs: float
    min_cosine: float
    mean_cosine: float
    neighbour_overlap: float  # @10
    num_images: int
    images: str  # "real" or "random"
    passed: bool
    tolerance: dict
    reason: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neighbour_overlap@10"] = d.pop("neighbour_overlap")
        return d


def compare(reference: np.ndarray, candidate: np.ndarray, precision: str, images: str = "real",
            tolerance: Tolerance | None = None) -> ParityResult:
    """Compare (N, D) embeddings and decide pass or fail against the precision's tolerance."""
    if reference.shape != candidate.shape:
        tol = tolerance or TOLERANCES[precision]
        return ParityResult(float("inf"), float("inf"), float("inf"), -1.0, -1.0, 0.0, int(reference.shape[0]),
                            images, False, tol.to_dict(),
                            f"output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    tol = tolerance or TOLERANCES[precision]
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    finite = np.isfinite(candidate).all()
    cos = cosine_rows(reference, candidate) if finite else np.full(len(reference), -1.0)
    overlap = neighbour_overlap(reference, candidate) if finite else 0.0
    reasons = []
    if not finite:
        reasons.append("non-finite outputs")
    if cos.min() < tol.min_cosine:
        reasons.append(f"min cosine {cos.min():.6f} < {tol.min_cosine}")
    if cos.mean() < tol.min_mean_cosine:
        reasons.append(f"mean cosine {cos.mean():.6f} < {tol.min_mean_cosine}")
    if overlap < tol.min_overlap:
        reasons.append(f"neighbour overlap@10 {overlap:.3f} < {tol.min_overlap}")
    return ParityResult(
        max_abs=float(diff.max()), mean_abs=float(diff.mean()), p99_abs=float(np.percentile(diff, 99)),
        min_cosine=float(cos.min()), mean_cosine=float(cos.mean()), neighbour_overlap=overlap,
        num_images=int(reference.shape[0]), images=images, passed=not reasons, tolerance=tol.to_dict(),
        reason="; ".join(reasons) or None)
