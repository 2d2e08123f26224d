"""The parity gate: an artifact's embeddings against the PyTorch student's, on the same real images.

Reported: max / mean / p99 absolute error, min and mean cosine similarity, neighbour overlap@10 (for each
image, the fraction of its 10 nearest neighbours among the parity images that both models agree on: what a
retrieval user would notice) and, for labelled parity images, leave-one-out weighted-kNN top-1 of both. Gated by
one logic for every precision (export.tolerances); ``failed`` names the criteria that did not hold.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from distill.core.embeddings import cosine_rows, l2_normalize, neighbour_overlap, search, weighted_knn
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
    failed: list[str] | None = None  # the criteria that did not hold (export.tolerances.CRITERIA)
    knn_reference: float | None = None  # leave-one-out weighted-kNN top-1 on labelled parity images
    knn: float | None = None
    knn_changed: list[int] | None = None  # [images whose kNN decision was right and is wrong now, the reverse]
    smallest_batch_min_cosine: float | None = None  # the first images run at the smallest batch (export.batch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neighbour_overlap@10"] = d.pop("neighbour_overlap")
        return d


def knn_applies(labels: np.ndarray, min_per_class: int = 5) -> bool:
    """The kNN criterion needs classes with neighbours of their own: two classes or more, and a median of at
    least ``min_per_class`` parity images per class (500 images over Tiny-ImageNet's 200 classes are 2-3 per
    class, where leave-one-out kNN is noise)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    counts = counts[counts > 0]
    return len(counts) > 1 and float(np.median(counts)) >= min_per_class


def knn_drop_fails(lost: int, gained: int, n: int, budget: float) -> bool:
    """A kNN drop fails the gate when it exceeds the budget (a fraction of ``n``) and what chance explains:
    McNemar's test on the images whose decision changed, lost - gained > 2 sqrt(lost + gained) (about 95 %).
    On 200 parity images one changed decision is 0.5 points, so a budget alone would fail on noise."""
    return (lost - gained) / n > budget and lost - gained > 2 * np.sqrt(lost + gained)


def loo_knn_correct(embeddings: np.ndarray, labels: np.ndarray, k: int = 20, t: float = 0.07) -> np.ndarray:
    """(N,) bool: each image's leave-one-out weighted-kNN top-1 (DINO's k=20, T=0.07) among the others is right."""
    feats = l2_normalize(np.asarray(embeddings, np.float32))
    sims, nbrs = search(feats, feats, min(k + 1, len(feats)))
    sims, nbrs = sims[:, 1:], nbrs[:, 1:]  # drop each image itself
    return weighted_knn(sims, labels[nbrs], int(labels.max()) + 1, t).argmax(1) == labels


def loo_knn(embeddings: np.ndarray, labels: np.ndarray, k: int = 20, t: float = 0.07) -> float:
    """Leave-one-out weighted-kNN top-1 of (N, D) embeddings among themselves."""
    return float(loo_knn_correct(embeddings, labels, k, t).mean())


def compare(reference: np.ndarray, candidate: np.ndarray, precision: str, images: str = "real",
            tolerance: Tolerance | None = None, labels: np.ndarray | None = None,
            smallest: np.ndarray | None = None) -> ParityResult:
    """Compare (N, D) embeddings and decide pass or fail against the precision's tolerance; ``labels`` (N,)
    adds the kNN criterion; ``smallest`` (n, D), the first n images run at the artifact's smallest batch
    (export.batch.run_smallest), must meet the same worst-image and mean cosine."""
    tol = tolerance or TOLERANCES[precision]
    if reference.shape != candidate.shape:
        return ParityResult(float("inf"), float("inf"), float("inf"), -1.0, -1.0, 0.0, int(reference.shape[0]),
                            images, False, tol.to_dict(),
                            f"output shape {candidate.shape} differs from PyTorch's {reference.shape}", ["shape"])
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    finite = np.isfinite(candidate).all()
    cos = cosine_rows(reference, candidate) if finite else np.full(len(reference), -1.0)
    overlap = neighbour_overlap(reference, candidate) if finite else 0.0
    use_knn = finite and labels is not None and knn_applies(labels)
    knn_ref = knn = None
    lost = gained = 0
    if use_knn:
        ref_ok, cand_ok = loo_knn_correct(reference, labels), loo_knn_correct(candidate, labels)
        knn_ref, knn = float(ref_ok.mean()), float(cand_ok.mean())
        lost, gained = int((ref_ok & ~cand_ok).sum()), int((~ref_ok & cand_ok).sum())
    failed, reasons = [], []
    if not finite:
        failed.append("non-finite")
        reasons.append("non-finite outputs")
    if cos.min() < tol.min_cosine:
        failed.append("worst image")
        reasons.append(f"worst image cosine {cos.min():.6f} < {tol.min_cosine}")
    if cos.mean() < tol.min_mean_cosine:
        failed.append("mean cosine")
        reasons.append(f"mean cosine {cos.mean():.6f} < {tol.min_mean_cosine}")
    if overlap < tol.min_overlap:
        failed.append("overlap")
        reasons.append(f"neighbour overlap@10 {overlap:.3f} < {tol.min_overlap}")
    if use_knn and knn_drop_fails(lost, gained, len(labels), tol.max_knn_drop):
        failed.append("knn")
        reasons.append(f"kNN top-1 {100 * knn:.1f} vs {100 * knn_ref:.1f}: drop > {100 * tol.max_knn_drop:.1f} points "
                       f"({lost} images lost, {gained} gained)")
    small_min = None
    if smallest is not None and finite:
        small_cos = (cosine_rows(reference[:len(smallest)], smallest) if np.isfinite(smallest).all()
                     else np.array([-1.0]))
        small_min = float(small_cos.min())
        if small_min < tol.min_cosine or small_cos.mean() < tol.min_mean_cosine:
            failed.append("smallest batch")
            reasons.append(f"at its smallest batch the runtime gives other embeddings: worst of {len(smallest)} "
                           f"images cosine {small_min:.6f}, mean {small_cos.mean():.6f} (batched: "
                           f"{cos.min():.6f}, {cos.mean():.6f})")
    return ParityResult(
        max_abs=float(diff.max()), mean_abs=float(diff.mean()), p99_abs=float(np.percentile(diff, 99)),
        min_cosine=float(cos.min()), mean_cosine=float(cos.mean()), neighbour_overlap=overlap,
        num_images=int(reference.shape[0]), images=images, passed=not reasons, tolerance=tol.to_dict(),
        reason="; ".join(reasons) or None, failed=failed, knn_reference=knn_ref, knn=knn,
        knn_changed=[lost, gained] if use_knn else None, smallest_batch_min_cosine=small_min)
