"""The index kinds: one row each, the only list of them (``retrieve index --index NAME``).

A row says how to build the faiss index from L2-normalised vectors (inner product = cosine), which search-effort
knob it has (``nprobe`` for the inverted-file kinds, ``ef_search`` for HNSW, none for exact search), whether
faiss has a GPU version of it, and how many bytes its serialised form takes for ``n`` vectors, which is what
``--index auto`` (retrieval_demo.auto) weighs against the memory budget. Adding a kind is adding a row to
:data:`INDEX_KINDS` (tests/retrieval/test_kinds.py registers a fake one and runs it through build, save, load,
search, evaluation and auto's estimate); the on-disk format (retrieval_demo.store) and the choice policy
(retrieval_demo.auto) need no change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from distill.core.deps import require
from distill.core.errors import ConfigError

HNSW_M = 32  # what auto builds, and the estimate assumes
EF_SEARCH_MAX = 1024  # tuning never raises efSearch beyond this


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4 sqrt(N), at most N / 39 (faiss wants 39 training points per centroid)."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


def default_pq_m(dim: int) -> int:
    """The largest divisor of ``dim`` up to dim / 20 (1280-d -> 64 bytes, 64-d -> 2), at least 1."""
    return max([m for m in range(1, max(1, dim // 20) + 1) if dim % m == 0] or [1])


def ivf_of(index):
    """The IVF index inside ``index`` (behind an OPQ transform), or None."""
    faiss = require("faiss", "faiss-cpu")
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


@dataclass(frozen=True)
class Knob:
    """A search-effort parameter: ``apply`` sets it on a CPU index, ``limit`` is the most it can usefully be."""

    name: str  # the IndexParams field and the --flag (nprobe | ef_search)
    apply: Callable[[Any, int], None]
    limit: Callable[[Any], int]


def _set_nprobe(index, value: int) -> None:
    ivf = ivf_of(index)
    if ivf is not None:
        ivf.nprobe = value


def _set_ef_search(index, value: int) -> None:
    index.hnsw.efSearch = value


KNOBS = {"nprobe": Knob("nprobe", _set_nprobe, lambda index: ivf_of(index).nlist),
         "ef_search": Knob("ef_search", _set_ef_search, lambda index: EF_SEARCH_MAX)}


@dataclass(frozen=True)
class IndexKind:
    name: str
    summary: str  # for --index's help
    build: Callable[[np.ndarray, Any], Any]  # (vectors, IndexParams) -> a trained, empty faiss index
    estimate: Callable[[int, int, int | None], int]  # (n, dim, pq_m) -> serialised bytes, within ~10 %
    knob: str | None = None  # a key of KNOBS, or None (exact search has no effort to raise)
    gpu: bool = False  # faiss has a GPU version (retrieval_demo.gpu clones it)
    gpu_float16: bool = False  # the GPU clone needs float16 lookup tables (PQ codes >= 56 bytes)
    uses_nlist: bool = False  # an inverted file: --nlist applies and is recorded once built

    @property
    def exact(self) -> bool:
        return self.knob is None

    def set_effort(self, index, params) -> None:
        """Set this kind's knob on ``index`` to the value in ``params``."""
        if self.knob is not None:
            KNOBS[self.knob].apply(index, getattr(params, self.knob))


def _flat(vectors: np.ndarray, params):
    faiss = require("faiss", "faiss-cpu")
    return faiss.IndexFlatIP(vectors.shape[1])


def _hnsw(vectors: np.ndarray, params):
    faiss = require("faiss", "faiss-cpu")
    index = faiss.IndexHNSWFlat(vectors.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params.ef_construction
    return index


def _ivf(vectors: np.ndarray, params):
    faiss = require("faiss", "faiss-cpu")
    dim = vectors.shape[1]
    nlist = params.nlist or default_nlist(len(vectors))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(vectors))
    return index


def _ivfpq(vectors: np.ndarray, params):
    faiss = require("faiss", "faiss-cpu")
    dim = vectors.shape[1]
    m = params.pq_m or default_pq_m(dim)
    if dim % m:
        raise ConfigError(f"--pq-m {m} must divide the embedding dimension {dim}")
    need = 39 * (1 << params.pq_bits)  # faiss wants about 39 training points per centroid
    if len(vectors) < need:
        raise ConfigError(f"ivfpq with {params.pq_bits}-bit codes needs at least {need} vectors to train, got "
                          f"{len(vectors)}; use --index flat or ivf, or fewer --pq-bits")
    nlist = params.nlist or default_nlist(len(vectors))
    spec = f"{'OPQ%d,' % m if params.opq else ''}IVF{nlist},PQ{m}x{params.pq_bits}"
    index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(vectors))
    return index


def _coarse(n: int, dim: int) -> int:
    return default_nlist(n) * dim * 4


INDEX_KINDS: dict[str, IndexKind] = {
    "flat": IndexKind("flat", "exact search", _flat, lambda n, dim, pq_m: n * dim * 4, gpu=True),
    "ivf": IndexKind("ivf", "inverted lists over k-means cells", _ivf,
                     lambda n, dim, pq_m: n * (dim * 4 + 8) + _coarse(n, dim), knob="nprobe", gpu=True,
                     uses_nlist=True),
    # vectors + level-0 links (2M int32) + upper levels (~1/M of nodes) and the levels table
    "hnsw": IndexKind("hnsw", "a navigable small-world graph", _hnsw,
                      lambda n, dim, pq_m: int(n * (dim * 4 + 2 * HNSW_M * 4 * 1.05 + 12)), knob="ef_search"),
    "ivfpq": IndexKind("ivfpq", "IVF with product-quantised codes, pq-m bytes a vector", _ivfpq,
                       lambda n, dim, pq_m: n * ((pq_m or 1) + 8) + _coarse(n, dim) + 256 * dim * 4,
                       knob="nprobe", gpu=True, gpu_float16=True, uses_nlist=True),
}


def index_kind(name: str) -> IndexKind:
    """The row of ``name``; an unknown name is refused with the valid ones."""
    try:
        return INDEX_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown index '{name}'; valid indexes: {', '.join(INDEX_KINDS)}, auto") from None


def kinds_help() -> str:
    return ", ".join(f"{k.name} ({k.summary})" for k in INDEX_KINDS.values())


def build_faiss(vectors: np.ndarray, params):
    """A faiss index of kind ``params.kind`` holding ``vectors`` (N, D), L2-normalised."""
    kind = index_kind(params.kind)
    if kind.uses_nlist and params.nlist and params.nlist > len(vectors):
        raise ConfigError(f"--nlist {params.nlist} is more than the {len(vectors)} images indexed (k-means needs a "
                          f"vector per list; faiss wants 39): use at most {max(1, len(vectors) // 39)}, or leave "
                          "--nlist out")
    index = kind.build(vectors, params)
    index.add(np.ascontiguousarray(vectors))
    return index


def set_search_params(index, params) -> None:
    """The search effort of ``params`` (nprobe / efSearch) on ``index``."""
    index_kind(params.kind).set_effort(index, params)
