"""Label-based evaluation of frozen embeddings: weighted kNN and 1-NN (k = 20, T = 0.07, DINO's ``eval_knn``),
plus the linear probe and cluster alignment of :mod:`distill.protocols`, on a labelled bank and queries.

The math (search, weighted kNN, embedding a folder, the per-fingerprint embedding cache) is
:mod:`distill.core.embeddings`; this module matches the two folders' classes and runs the protocols.
"""
from __future__ import annotations

import numpy as np

from distill.core.embeddings import embed_folder_cached, knn_protocols
from distill.core.errors import DataError
from distill.core.images import ImageFolder


def align_labels(train: ImageFolder, val: ImageFolder) -> ImageFolder:
    """``val`` with its labels renumbered to ``train``'s class order (matched by folder name)."""
    if train.labels is None or val.labels is None:
        raise DataError("kNN evaluation needs labelled folders (root/<class>/<image>) for --train and --val")
    if train.classes == val.classes:
        return val
    missing = sorted(set(val.classes) - set(train.classes))
    if missing:
        raise DataError(f"--val has classes that --train lacks ({', '.join(missing[:3])}); both need the same "
                        "root/<class>/ names")
    remap = np.asarray([train.classes.index(c) for c in val.classes], dtype=np.int64)
    return ImageFolder(val.root, val.paths, remap[val.labels], train.classes)


def evaluate_knn(embedder, train: ImageFolder, val: ImageFolder, k: int = 20, t: float = 0.07,
                 batch_size: int = 256, workers: int = 2, protocols: tuple[str, ...] = (),
                 cache_dir: str | None = None) -> dict[str, float | int]:
    """Embed both folders with ``embedder`` and run weighted kNN and 1-NN (``train`` is the bank), plus any of
    ``protocols``: "linear" (probe, see distill.protocols) and "cluster" (CompRess cluster alignment)."""
    val = align_labels(train, val)
    bank = embed_folder_cached(embedder, train, cache_dir, batch_size, workers, desc="embed bank")
    queries = embed_folder_cached(embedder, val, cache_dir, batch_size, workers, desc="embed queries")
    result = knn_protocols(bank, queries, k, t, num_classes=len(train.classes))
    for name in protocols:
        if name == "linear":
            from distill.protocols import linear_probe

            result.update(linear_probe(bank.features, bank.labels, queries.features, queries.labels,
                                       len(train.classes)))
        elif name == "cluster":
            from distill.protocols import cluster_alignment

            result.update(cluster_alignment(bank.features, bank.labels, queries.features, queries.labels))
    return {**result, "k": k, "temperature": t, "num_train": len(bank.features), "num_val": len(queries.features),
            "num_skipped": bank.skipped + queries.skipped}
