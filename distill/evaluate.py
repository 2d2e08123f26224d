"""Label-based evaluation of frozen embeddings: weighted kNN and 1-NN.

* weighted kNN (DINO's ``eval_knn``, Caron et al. 2021, itself after Wu et al. 2018): cosine similarity to
  the bank, the k = 20 nearest neighbours vote for their class with weight exp(sim / T), T = 0.07;
  top-1 and top-5;
* 1-NN (CompRess): the label of the single nearest neighbour.

Search is exact inner product on L2-normalised features with faiss. Embeddings can be kept per model
fingerprint and folder (:func:`embed_folder_cached`), so the protocols rerun in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distill.data import ImageFolder
from distill.datasets import BatchStream
from distill.errors import DataError
from distill.progress import progress


@dataclass
class FolderEmbeddings:
    """(N, D) float32 features (not normalised) of the readable images of a folder, with their labels."""

    features: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray  # positions in the folder (unreadable images are missing)
    skipped: int


@torch.no_grad()
def embed_folder(embedder, folder: ImageFolder, batch_size: int = 256, workers: int = 2, desc: str = "embed") -> FolderEmbeddings:
    """Embed every readable image of ``folder`` with the embedder's own preprocessing (centre crop)."""
    pre = embedder.preprocess
    stream = BatchStream(folder, pre.input_size, batch_size, crop_pct=pre.crop_pct, workers=workers,
                         drop_last=False, shuffle=False)
    feats, idx = [], []
    for batch in progress(stream.epoch(0), desc=desc, total=stream.batches_per_epoch(), unit="batch"):
        x = pre.from_uint8(batch.images)
        out = embedder(x)  # a torch embedder returns a tensor, an export backend a numpy array
        feats.append(out.float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32))
        idx.append(batch.indices.numpy())
    if not feats:
        raise DataError(f"none of the {len(folder)} images in '{folder.root}' could be read")
    indices = np.concatenate(idx)
    labels = None if folder.labels is None else folder.labels[indices]
    return FolderEmbeddings(np.concatenate(feats).astype(np.float32), labels, indices, len(stream.skipped))


def embedding_key(embedder, folder: ImageFolder) -> str:
    """SHA-256 of what determines a folder's embeddings: the model's fingerprint, its preprocessing, the images."""
    import hashlib
    import json

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
    from pathlib import Path

    from distill.checkpoint import atomic_write_bytes

    path = Path(cache_dir) / f"{embedding_key(embedder, folder)}.npz"
    if path.is_file():
        try:
            z = np.load(path)
            labels = z["labels"] if z["labels"].size else None
            return FolderEmbeddings(z["features"], labels, z["indices"], int(z["skipped"]))
        except (OSError, ValueError, KeyError):
            pass  # unreadable: recompute and replace it
    emb = embed_folder(embedder, folder, batch_size, workers, desc)
    import io

    buf = io.BytesIO()
    np.savez(buf, features=emb.features, labels=emb.labels if emb.labels is not None else np.empty(0),
             indices=emb.indices, skipped=np.array(emb.skipped))
    atomic_write_bytes(path, buf.getvalue())
    return emb


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def search(bank: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search: (similarities, indices), each (Q, k). Inputs must be L2-normalised."""
    import faiss

    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank))
    return index.search(np.ascontiguousarray(queries), k)


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


def knn_protocols(train: FolderEmbeddings, val: FolderEmbeddings, k: int = 20, t: float = 0.07,
                  num_classes: int | None = None) -> dict[str, float]:
    """Weighted kNN top-1/top-5 and 1-NN top-1, with ``train`` as the bank and ``val`` as the queries."""
    if train.labels is None or val.labels is None:
        raise DataError("kNN evaluation needs labelled folders (root/<class>/<image>) for --train and --val")
    num_classes = num_classes or int(max(train.labels.max(), val.labels.max())) + 1
    bank, queries = l2_normalize(train.features), l2_normalize(val.features)
    k_eff = min(k, len(bank))
    sims, nbrs = search(bank, queries, k_eff)
    scores = weighted_knn(sims, train.labels[nbrs], num_classes, t)
    return {
        "knn_top1": topk_accuracy(scores, val.labels, 1),
        "knn_top5": topk_accuracy(scores, val.labels, 5),
        "nn_top1": float((train.labels[nbrs[:, 0]] == val.labels).mean()),
    }


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

            result.update(linear_probe(bank.features, bank.labels, queries.features, queries.labels, len(train.classes)))
        elif name == "cluster":
            from distill.protocols import cluster_alignment

            result.update(cluster_alignment(bank.features, bank.labels, queries.features, queries.labels))
    return {**result, "k": k, "temperature": t, "num_train": len(bank.features), "num_val": len(queries.features),
            "num_skipped": bank.skipped + queries.skipped}
