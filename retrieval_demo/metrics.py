"""Retrieval quality with class folders as relevance labels: precision@k, recall@k, mAP, and for approximate
indexes (IVF, HNSW) the recall of exact search's top-k.

An indexed image is relevant to a query when both sit in a class folder of the same name (the first component
of the path relative to the indexed root, and the query's parent folder).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from distill.core.embeddings import embed_folder, l2_normalize, search
from distill.core.errors import DataError
from distill.core.images import scan_folder
from retrieval_demo.kinds import index_kind
from retrieval_demo.store import ImageIndex


def average_precision(relevant: np.ndarray, num_relevant: int) -> float:
    """AP of one ranked list: mean of precision@i over the ranks i of relevant hits, over min(R, len(list))."""
    if num_relevant == 0:
        return 0.0
    hits = np.cumsum(relevant)
    precisions = hits / np.arange(1, len(relevant) + 1)
    return float((precisions * relevant).sum() / min(num_relevant, len(relevant)))


def retrieval_metrics(result_classes: list[list[str]], query_classes: list[str], class_counts: dict[str, int],
                      ks: tuple[int, ...]) -> dict[str, float]:
    """P@k, R@k for each k and mAP over the whole returned lists."""
    out: dict[str, float] = {}
    rel = [np.array([c == q for c in row], dtype=np.float64) for row, q in zip(result_classes, query_classes)]
    for k in ks:
        out[f"precision@{k}"] = float(np.mean([r[:k].sum() / k for r in rel]))
        out[f"recall@{k}"] = float(np.mean([r[:k].sum() / max(class_counts.get(q, 0), 1)
                                            for r, q in zip(rel, query_classes)]))
    out["map"] = float(np.mean([average_precision(r, class_counts.get(q, 0)) for r, q in zip(rel, query_classes)]))
    return out


def recall_vs_exact(approx_ids: list[list[str]], exact_ids: list[list[str]], k: int) -> float:
    """Mean fraction of exact search's top-k that the approximate index also returns in its top-k."""
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / max(len(e[:k]), 1) for a, e in zip(approx_ids, exact_ids)]))


def _class_of(rel_path: str) -> str:
    parts = Path(rel_path).parts
    return parts[0] if len(parts) > 1 else ""


def query_latency(backend, index: ImageIndex, images: np.ndarray, k: int = 10, **search_kw) -> dict[str, float]:
    """One query at a time, as a user sends them: p50 / p99 of embedding, search and both (milliseconds).
    ``images`` is a preprocessed (N, 3, S, S) float32 batch; decoding is not timed."""
    embed_ms, search_ms = [], []
    for x in images[:5, None]:  # warm-up: first calls allocate and pick kernels
        index.search(backend(x), k, **search_kw)
    for x in images[:, None]:
        t0 = time.perf_counter()
        emb = backend(x)
        t1 = time.perf_counter()
        index.search(emb, k, **search_kw)
        t2 = time.perf_counter()
        embed_ms.append((t1 - t0) * 1e3)
        search_ms.append((t2 - t1) * 1e3)
    e, s = np.asarray(embed_ms), np.asarray(search_ms)
    total = e + s
    return {"embed_p50_ms": float(np.percentile(e, 50)), "search_p50_ms": float(np.percentile(s, 50)),
            "query_p50_ms": float(np.percentile(total, 50)), "query_p99_ms": float(np.percentile(total, 99)),
            "latency_queries": len(images)}


def evaluate_index(index: ImageIndex, queries: str, ks: tuple[int, ...] = (1, 5, 10), map_depth: int = 100,
                   nprobe: int | None = None, ef_search: int | None = None, limit: int | None = None,
                   workers: int = 2, latency_queries: int = 200) -> dict[str, Any]:
    """Embed the labelled ``queries`` folder with the index's model and measure retrieval against the index."""
    from export.backends import load_backend

    folder = scan_folder(queries, limit)
    if folder.labels is None:
        raise DataError(f"'{queries}' has no class folders; eval needs queries/<class>/<image> as relevance labels")
    indexed_classes = [_class_of(p) for p in index.paths]
    counts: dict[str, int] = {}
    for c in indexed_classes:
        counts[c] = counts.get(c, 0) + 1
    if not set(folder.classes) & set(counts):
        raise DataError(f"none of the query classes in '{queries}' is a class folder of the indexed root "
                        f"'{index.root}'; relevance is judged by matching folder names")
    backend = load_backend(index.model)
    emb = embed_folder(backend, folder, batch_size=64, workers=workers, desc="queries")
    query_classes = [folder.classes[folder.labels[i]] for i in emb.indices]
    depth = max(max(ks), map_depth)
    t0 = time.perf_counter()
    _, paths = index.search(emb.features, depth, nprobe=nprobe, ef_search=ef_search)
    search_s = time.perf_counter() - t0
    path_class = dict(zip(index.paths, indexed_classes))
    result = retrieval_metrics([[path_class[p] for p in row] for row in paths], query_classes, counts, ks)
    result["recall@10_vs_exact"] = None
    kind = index_kind(index.params.kind)
    if not kind.exact:
        # exact neighbours from a flat index: no dense (N, Q) similarity matrix (8 GB at 1 M x 2,000)
        _, top = search(l2_normalize(index.embeddings()), l2_normalize(emb.features), max(ks))
        exact_paths = [[index.paths[i] for i in row] for row in top]
        for k in ks:
            result[f"recall@{k}_vs_exact"] = recall_vs_exact(paths, exact_paths, k)
    if latency_queries:
        picked = [folder.absolute(int(i)) for i in emb.indices[:: max(1, len(emb.indices) // latency_queries)]]
        batch = backend.load_images(picked[:latency_queries])  # decoded and normalised outside the timing
        result.update(query_latency(backend, index, batch, max(ks), nprobe=nprobe, ef_search=ef_search))
    result.update(num_queries=len(query_classes), num_skipped=emb.skipped, num_indexed=len(index),
                  index=index.params.kind,
                  nprobe=(nprobe or index.params.nprobe) if kind.knob == "nprobe" else None,
                  ef_search=(ef_search or index.params.ef_search) if kind.knob == "ef_search" else None,
                  map_depth=depth, search_ms_per_query=1e3 * search_s / max(len(query_classes), 1))
    return result
