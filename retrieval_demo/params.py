"""The parameters of an index, as ``retrieve index`` takes them and ``manifest.json`` records them."""
from __future__ import annotations

from dataclasses import dataclass

from distill.core.errors import ConfigError


@dataclass(frozen=True)
class IndexParams:
    kind: str = "flat"  # a row of retrieval_demo.kinds.INDEX_KINDS, or auto
    nlist: int | None = None  # IVF lists; default ~4 * sqrt(N), at most N / 39 (kinds.default_nlist)
    m: int = 32  # HNSW neighbours per node
    ef_construction: int = 80  # HNSW build-time beam
    nprobe: int = 8  # IVF lists searched per query (faiss's own default is 1, which loses recall)
    ef_search: int = 64  # HNSW search-time beam
    pq_m: int | None = None  # IVF-PQ: bytes (sub-quantizers) per vector; must divide the dimension (default: D / 20)
    pq_bits: int = 8  # IVF-PQ: bits per sub-quantizer code (8: 256 centroids each, what faiss's fast scan expects)
    opq: bool = False  # IVF-PQ: learn an OPQ rotation first (faiss OPQ), better codes for the same bytes
    rerank: int = 0  # re-rank the top N candidates by exact cosine against embeddings.npy, memory-mapped (0: off)
    max_memory: int | None = None  # auto: the index's budget in bytes (default: half the available memory)
    target_recall: float = 0.9  # auto: recall@10 against exact search to reach by raising nprobe / efSearch

    def validate(self) -> None:
        from retrieval_demo.kinds import index_kind

        if self.kind != "auto":
            index_kind(self.kind)
        if self.rerank < 0:
            raise ConfigError(f"--rerank must be 0 (off) or a number of candidates, got {self.rerank}")
        if not 0 < self.target_recall <= 1:
            raise ConfigError(f"--target-recall must be in (0, 1], got {self.target_recall}")
        for name in ("m", "ef_construction", "nprobe", "ef_search"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
