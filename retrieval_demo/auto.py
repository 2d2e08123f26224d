"""``--index auto``: pick the index kind and its parameters from the number of vectors and a memory budget, then
measure its recall@10 against exact search and raise the search effort until a target recall is met.

The rule follows autofaiss's reasoning (autofaiss itself is not a dependency: it pins its own faiss and numpy):

1. exact search (flat) when it fits the budget and the collection is small enough (<= 100,000 vectors) for a
   brute-force scan to stay in the millisecond range on a CPU;
2. else HNSW (M=32) when its vectors and graph fit: the best recall per query time of faiss's CPU indexes;
3. else IVF-flat when the raw vectors fit (the lists hold them, with 8-byte ids);
4. else IVF-PQ, with the largest code size (bytes per vector, a divisor of the dimension) that fits, which keeps
   the most accuracy for the budget; OPQ is added when codes are 8 bytes or fewer per 64 dimensions; its top 300
   candidates are re-ranked by exact cosine against ``embeddings.npy``, memory-mapped (the codes alone cannot order
   near neighbours: recall@10 0.34 at a million vectors, 0.96 re-ranked, docs/RETRIEVAL.md).

Sizes are estimated from faiss's layouts (below) and checked against the built index's serialised size, which is
what ``retrieve`` loads (``bytes_per_vector`` in the manifest). Recall is measured on up to 1,000 of the indexed
vectors used as queries, against a flat index over the same vectors (no N x Q matrix is formed).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np

from distill.core.errors import ConfigError
from retrieval_demo.kinds import HNSW_M, KNOBS, index_kind, set_search_params

FLAT_MAX_VECTORS = 100_000
RERANK = 300  # IVF-PQ candidates re-ranked exactly (docs/RETRIEVAL.md, "A million vectors": 100 gave 0.87)
PQ_MIN_TRAIN = 39 * 256  # faiss wants about 39 training points per centroid, 256 centroids per 8-bit code
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """'512MB', '2GiB', '300k', '1e9' -> bytes."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ConfigError(f"cannot read '{text}' as a size; write e.g. 512MB, 2GB or 800MiB")
    try:
        value = float(m.group(1)) * _UNITS[unit]
    except ValueError:
        raise ConfigError(f"cannot read '{text}' as a size; write e.g. 512MB, 2GB or 800MiB") from None
    if value <= 0:
        raise ConfigError(f"--max-memory must be positive, got '{text}'")
    return int(value)


def estimate_bytes(kind: str, n: int, dim: int, pq_m: int | None = None) -> int:
    """Serialised size of an index of kind ``kind`` holding ``n`` vectors of ``dim`` float32 (its row's estimate)."""
    return index_kind(kind).estimate(n, dim, pq_m)


@dataclass
class AutoChoice:
    kind: str
    pq_m: int | None
    opq: bool
    estimated_bytes: int
    reason: str
    rerank: int = 0  # IVF-PQ: exact re-ranking of this many candidates from embeddings.npy on disk


def choose_index(n: int, dim: int, max_bytes: int) -> AutoChoice:
    """The index for ``n`` vectors of ``dim`` under ``max_bytes`` (the rule in the module docstring)."""
    flat = estimate_bytes("flat", n, dim)
    if flat <= max_bytes and n <= FLAT_MAX_VECTORS:
        return AutoChoice("flat", None, False, flat, f"exact search fits ({flat / 1e6:.1f} MB) and {n} <= "
                          f"{FLAT_MAX_VECTORS} vectors")
    hnsw = estimate_bytes("hnsw", n, dim)
    if hnsw <= max_bytes:
        return AutoChoice("hnsw", None, False, hnsw, f"HNSW{HNSW_M} fits ({hnsw / 1e6:.1f} MB): the best recall per "
                          "query time")
    ivf = estimate_bytes("ivf", n, dim)
    if ivf <= max_bytes:
        return AutoChoice("ivf", None, False, ivf, f"IVF-flat fits ({ivf / 1e6:.1f} MB), HNSW does not "
                          f"({hnsw / 1e6:.1f} MB)")
    if n < PQ_MIN_TRAIN:
        raise ConfigError(f"{n} vectors of {dim} dimensions need at least {min(flat, ivf) / 1e6:.1f} MB (IVF-PQ needs "
                          f"{PQ_MIN_TRAIN} vectors to train); raise --max-memory")
    for m in sorted((d for d in range(1, dim + 1) if dim % d == 0 and d <= dim // 2), reverse=True):
        size = estimate_bytes("ivfpq", n, dim, m)
        if size <= max_bytes:
            return AutoChoice("ivfpq", m, m * 64 <= 8 * dim, size,
                              f"only compressed codes fit: IVF-PQ with {m} bytes per vector ({size / 1e6:.1f} MB), "
                              f"the top {RERANK} re-ranked exactly from embeddings.npy on disk", RERANK)
    smallest = estimate_bytes("ivfpq", n, dim, 1)
    raise ConfigError(f"no index of {n} vectors fits {max_bytes / 1e6:.1f} MB (the smallest, IVF-PQ with 1-byte "
                      f"codes, needs {smallest / 1e6:.1f} MB); raise --max-memory")


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """(Q, k) ids of each query's exact top-k by inner product: a flat faiss index, no N x Q matrix."""
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return exact.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(vectors)))[1]


def approximate_neighbours(index, queries: np.ndarray, k: int, rerank: int = 0,
                           vectors: np.ndarray | None = None) -> np.ndarray:
    """(Q, k) ids from ``index``, its top ``rerank`` re-ranked exactly against ``vectors`` when set."""
    if not rerank:
        return index.search(queries, k)[1]
    return rerank_exact(vectors, queries, index.search(queries, min(max(k, rerank), index.ntotal))[1], k)[1]


def mean_recall(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (Q, k) that ``found`` (Q, k) holds."""
    return float(np.mean([len(np.intersect1d(t, f)) / len(t) for t, f in zip(truth, found)]))


def sample_queries(vectors: np.ndarray, num_queries: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = vectors[rng.choice(len(vectors), size=min(num_queries, len(vectors)), replace=False)]
    return np.ascontiguousarray(q, dtype=np.float32)


def recall_at_k(index, vectors: np.ndarray, k: int = 10, num_queries: int = 1000, seed: int = 0,
                rerank: int = 0) -> float:
    """Mean recall@k of ``index`` (re-ranking its top ``rerank`` exactly, when set) against exact inner-product
    search, on up to ``num_queries`` of ``vectors``."""
    q = sample_queries(vectors, num_queries, seed)
    truth = exact_neighbours(vectors, q, k)
    return mean_recall(truth, approximate_neighbours(index, q, truth.shape[1], rerank, vectors))


def tune_recall(index, vectors: np.ndarray, params, target: float, k: int = 10) -> tuple[float, list[dict], object]:
    """Double the kind's search-effort knob (nprobe for IVF, efSearch for HNSW) until recall@k reaches ``target``,
    the knob's limit is reached, or a doubling gains less than 0.002. Returns the recall, the trials and the
    parameters with the effort found (a copy; ``params`` is left as given)."""
    q = sample_queries(vectors)
    truth = exact_neighbours(vectors, q, k)  # once: only the search effort changes between trials
    kind = index_kind(params.kind)
    trials = []
    while True:
        set_search_params(index, params)
        recall = mean_recall(truth, approximate_neighbours(index, q, truth.shape[1], params.rerank, vectors))
        trials.append({"nprobe": params.nprobe, "ef_search": params.ef_search, "recall@10": round(recall, 4)})
        if recall >= target or kind.knob is None:
            return recall, trials, params
        if len(trials) > 1 and recall - trials[-2]["recall@10"] < 0.002:
            return recall, trials, params  # more effort no longer helps: the codes (PQ) limit the recall
        knob = KNOBS[kind.knob]
        value, limit = getattr(params, knob.name), knob.limit(index)
        if value >= limit:
            return recall, trials, params
        params = replace(params, **{knob.name: min(value * 2, limit)})


def default_budget() -> int:
    """Half the memory available now (Linux), else 4 GB: the --max-memory of --index auto when none is given."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
    except (ValueError, OSError, AttributeError):
        return 4 * 10**9


def rerank_exact(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k among each query's candidates ``ids`` (Q, N; -1 = none) by inner product with
    ``vectors`` (a memory map is fine: only the candidate rows are read)."""
    scores = np.full((len(queries), k), -np.inf, np.float32)
    out = np.full((len(queries), k), -1, np.int64)
    for i, (q, row) in enumerate(zip(queries, ids)):
        cand = row[row >= 0]
        if not len(cand):
            continue
        order = np.sort(cand)  # ascending ids: sequential reads of the map
        exact = np.asarray(vectors[order], np.float32) @ q
        top = np.argsort(-exact, kind="stable")[:k]
        scores[i, :len(top)], out[i, :len(top)] = exact[top], order[top]
    return scores, out
