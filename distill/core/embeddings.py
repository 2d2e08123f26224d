"""The embedding math, in one place: L2 normalisation, cosine, exact search, weighted kNN, neighbour overlap,
and embedding a folder with any embedder.

Every part of edgedistill that compares embeddings (evaluation, the export parity gate, the benchmark's
accuracy columns, retrieval) uses these functions, with one epsilon (:data:`EPS`).

* weighted kNN: DINO's ``eval_knn`` (Caron et al. 2021, after Wu et al. 2018): cosine similarity to the bank,
  the k nearest neighbours vote for their class with weight exp(sim / T);
* 1-NN (CompRess): the label of the single nearest neighbour;
* neighbour overlap@k: for each image, the fraction of its k nearest neighbours (self excluded) that two
  embeddings of the same images agree on.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.core.atomic import atomic_write_bytes
from distill.core.errors import DataError, ModelError
from distill.core.images import ImageFolder
from distill.core.progress import progress
from distill.core.reader import read_batches, warn_skipped

EPS = 1e-12  # the floor under every norm: a zero vector stays zero instead of dividing by zero


def l2_normalize(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(N, D) rows scaled to unit L2 norm, as ``dtype`` (float32 for search, float64 for parity statistics)."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)).astype(dtype)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity of row i of ``a`` with row i of ``b`` (float64)."""
    return (l2_normalize(a, np.float64) * l2_normalize(b, np.float64)).sum(1)


def search(bank: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search: (similarities, indices), each (Q, k). Inputs must be L2-normalised."""
    import faiss

    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def self_neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each row's k nearest rows by cosine, itself excluded (stable order on ties)."""
    xn = l2_normalize(x, np.float64)
    sims = xn @ xn.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def neighbour_overlap(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> float:
    """Mean fraction of shared k nearest neighbours (cosine, self excluded) between two (N, D) embeddings of the
    same images."""
    k = min(k, reference.shape[0] - 1)
    if k <= 0:
        return 1.0
    a, b = self_neighbours(reference, k), self_neighbours(candidate, k)
    return float(np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(a))]))


def bank_overlap(ref_bank: np.ndarray, ref_queries: np.ndarray, bank: np.ndarray, queries: np.ndarray,
                 k: int = 10) -> float:
    """Neighbour overlap@k of queries searched in their own bank, two embeddings of the same bank and queries."""
    _, a = search(l2_normalize(ref_bank), l2_normalize(ref_queries), k)
    _, b = search(l2_normalize(bank), l2_normalize(queries), k)
    return float(np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(a))]))


def weighted_knn(sims: np.ndarray, neighbour_labels: np.ndarray, num_classes: int, t: float = 0.07) -> np.ndarray:
    """Class scores (Q, C) from the k neighbours' labels weighted by exp(sim / t) (DINO's eval_knn)."""
    weights = np.exp(sims.astype(np.float64) / t)
    scores = np.zeros((sims.shape[0], num_classes))
    rows = np.repeat(np.arange(sims.shape[0]), sims.shape[1])
    np.add.at(scores, (rows, neighbour_labels.ravel()), weights.ravel())
    return scores


def topk_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(1).mean())


@dataclass
class FolderEmbeddings:
    """(N, D) float32 features (not normalised) of the readable images of a folder, with their labels."""

    features: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray  # positions in the folder (unreadable images are missing)
    skipped: int


def knn_protocols(train: FolderEmbeddings, val: FolderEmbeddings, k: int = 20, t: float = 0.07,
                  num_classes: int | None = None) -> dict[str, float]:
    """Weighted kNN top-1/top-5 and 1-NN top-1, with ``train`` as the bank and ``val`` as the queries."""
    if train.labels is None or val.labels is None:
        raise DataError("kNN evaluation needs labelled folders (root/<class>/<image>) for --train and --val")
    num_classes = num_classes or int(max(train.labels.max(), val.labels.max())) + 1
    bank, queries = l2_normalize(train.features), l2_normalize(val.features)
    sims, nbrs = search(bank, queries, min(k, len(bank)))
    scores = weighted_knn(sims, train.labels[nbrs], num_classes, t)
    return {
        "knn_top1": topk_accuracy(scores, val.labels, 1),
        "knn_top5": topk_accuracy(scores, val.labels, 5),
        "nn_top1": float((train.labels[nbrs[:, 0]] == val.labels).mean()),
    }


def as_float32(out) -> np.ndarray:
    """An embedder's output as a float32 numpy array: a numpy array as it is, a torch tensor (on any device, any
    dtype) detached and copied to the host, without importing torch here."""
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def embed_folder(embedder, folder: ImageFolder, batch_size: int = 256, workers: int = 2,
                 desc: str = "embed") -> FolderEmbeddings:
    """Embed every readable image of ``folder`` with the embedder's own preprocessing (centre crop).

    An embedder has ``preprocess`` and maps a normalised (B, 3, S, S) float32 numpy batch to (B, D): an export
    backend returns a numpy array, a torch embedder (student, teacher) a tensor. Images are decoded by
    ``workers`` threads (:mod:`distill.core.reader`), so this runs without torch.
    """
    pre = embedder.preprocess
    feats, idx, skipped = [], [], []
    batches = read_batches(folder, pre.input_size, batch_size, crop_pct=pre.crop_pct, workers=workers)
    total = -(-len(folder) // batch_size)
    for images, indices, bad in progress(batches, desc=desc, total=total, unit="batch"):
        skipped += bad
        if len(indices):
            feats.append(as_float32(embedder(pre.numpy_from_uint8(images))))
            idx.append(indices)
    warn_skipped(folder, skipped)
    if not feats:
        raise DataError(f"none of the {len(folder)} images in '{folder.root}' could be read")
    indices = np.concatenate(idx)
    labels = None if folder.labels is None else folder.labels[indices]
    features = np.concatenate(feats).astype(np.float32)
    path, name = getattr(embedder, "path", None), getattr(embedder, "name", None)
    name = Path(path).name if path is not None else name  # an artifact: its file, the one to re-export
    check_finite(features, f"model '{name}'" if isinstance(name, str) else "the model")
    return FolderEmbeddings(features, labels, indices, len(skipped))


def check_finite(features: np.ndarray, what: str) -> None:
    """Refuse (N, D) embeddings with NaN or inf rows: a damaged weight file passes every load check and then
    answers with NaN, which kNN and faiss would rank silently."""
    bad = int((~np.isfinite(features).all(axis=1)).sum())
    if bad:
        raise ModelError(f"{what} produced non-finite embeddings (NaN or inf) for {bad} of {len(features)} images; "
                         "its weights may be damaged: re-export or re-train it")


def embedding_key(embedder, folder: ImageFolder) -> str:
    """SHA-256 of what determines a folder's embeddings: the model's fingerprint, its preprocessing, the images."""
    h = hashlib.sha256(embedder.fingerprint().encode())
    h.update(json.dumps(embedder.preprocess.to_dict(), sort_keys=True).encode())
    h.update(folder.fingerprint().encode())
    return h.hexdigest()


def embed_folder_cached(embedder, folder: ImageFolder, cache_dir: str | None, batch_size: int = 256,
                        workers: int = 2, desc: str = "embed") -> FolderEmbeddings:
    """:func:`embed_folder`, kept in ``cache_dir`` (one ``.npz`` per model fingerprint and folder) and reused
    while neither changes; ``cache_dir=None`` computes every time."""
    if cache_dir is None:
        return embed_folder(embedder, folder, batch_size, workers, desc)
    path = Path(cache_dir) / f"{embedding_key(embedder, folder)}.npz"
    if path.is_file():
        try:
            z = np.load(path)
            labels = z["labels"] if z["labels"].size else None
            return FolderEmbeddings(z["features"], labels, z["indices"], int(z["skipped"]))
        except (OSError, ValueError, KeyError):
            pass  # unreadable: recompute and replace it
    emb = embed_folder(embedder, folder, batch_size, workers, desc)
    buf = io.BytesIO()
    np.savez(buf, features=emb.features, labels=emb.labels if emb.labels is not None else np.empty(0),
             indices=emb.indices, skipped=np.array(emb.skipped))
    atomic_write_bytes(path, buf.getvalue())
    return emb
