"""An image index on disk: a faiss index over L2-normalised embeddings (inner product = cosine), the embeddings,
the image paths relative to the indexed root, and a manifest with the model's fingerprint and preprocessing.

    INDEX_DIR/
      manifest.json     model path + SHA-256, preprocessing, index kind and parameters, root, counts
      index.faiss       faiss.IndexFlatIP | IndexIVFFlat (inner product) | IndexHNSWFlat (inner product)
      embeddings.npy    (N, D) float32, L2-normalised
      paths.json        N paths relative to the root, in index order

Every file is written to a temporary name and renamed, manifest last: a crash leaves the old index whole.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distill.core.atomic import atomic_write_bytes, atomic_write_json
from distill.core.deps import require
from distill.core.embeddings import embed_folder, l2_normalize
from distill.core.errors import ConfigError, DataError, ModelError
from distill.core.images import scan_folder

MANIFEST = "manifest.json"
INDEX_KINDS = ("flat", "ivf", "hnsw")


@dataclass
class IndexParams:
    kind: str = "flat"  # flat (exact) | ivf (inverted lists, k-means) | hnsw (graph)
    nlist: int | None = None  # IVF lists; default ~4 * sqrt(N), at most N / 39 (faiss wants 39 points per centroid)
    m: int = 32  # HNSW neighbours per node
    ef_construction: int = 80  # HNSW build-time beam
    nprobe: int = 8  # IVF lists searched per query (faiss's own default is 1, which loses recall)
    ef_search: int = 64  # HNSW search-time beam

    def validate(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ConfigError(f"unknown index '{self.kind}'; valid indexes: {', '.join(INDEX_KINDS)}")
        for name in ("m", "ef_construction", "nprobe", "ef_search"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


def default_nlist(n: int) -> int:
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


def build_faiss(vectors: np.ndarray, params: IndexParams):
    """A faiss index over L2-normalised ``vectors`` (N, D) where inner product is cosine similarity."""
    faiss = require("faiss", "faiss-cpu")
    dim = vectors.shape[1]
    if params.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
    else:
        nlist = params.nlist or default_nlist(len(vectors))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vectors))
    index.add(np.ascontiguousarray(vectors))
    return index


def set_search_params(index, params: IndexParams) -> None:
    if hasattr(index, "nprobe"):
        index.nprobe = params.nprobe
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = params.ef_search


class ImageIndex:
    """A loaded index: ``search(queries, k)`` on (Q, D) embeddings gives (scores, paths)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST
        if not manifest.is_file():
            raise DataError(f"'{self.folder}' is not an index (no {MANIFEST}); build one with "
                            "'edgedistill retrieve index --model ARTIFACT --images DIR --out INDEX_DIR'")
        faiss = require("faiss", "faiss-cpu")
        rebuild = "rebuild it with 'edgedistill retrieve index --model ARTIFACT --images DIR --out INDEX_DIR'"
        try:
            self.manifest: dict[str, Any] = json.loads(manifest.read_text())
            self.params = IndexParams(**self.manifest["params"])
            self.paths: list[str] = json.loads((self.folder / "paths.json").read_text())
            self.root = Path(self.manifest["root"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"index '{self.folder}' has a damaged or missing manifest.json/paths.json "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {rebuild}") from None
        try:
            self.index = faiss.deserialize_index(np.fromfile(self.folder / "index.faiss", dtype=np.uint8))
        except (OSError, RuntimeError, ValueError) as exc:  # faiss raises RuntimeError with its C++ stack
            raise DataError(f"index '{self.folder}' has a damaged or missing index.faiss "
                            f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
                            f"{rebuild}") from None
        if self.index.ntotal != len(self.paths):
            raise DataError(f"index '{self.folder}' holds {self.index.ntotal} vectors for {len(self.paths)} paths; "
                            f"{rebuild}")
        set_search_params(self.index, self.params)

    @property
    def model(self) -> str:
        return self.manifest["model"]["path"]

    def __len__(self) -> int:
        return len(self.paths)

    def embeddings(self) -> np.ndarray:
        return np.load(self.folder / "embeddings.npy")

    def search(self, queries: np.ndarray, k: int = 10, nprobe: int | None = None,
               ef_search: int | None = None) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k cosine neighbours of (Q, D) query embeddings: scores (Q, k) and relative paths."""
        if nprobe or ef_search:
            set_search_params(self.index, IndexParams(nprobe=nprobe or self.params.nprobe,
                                                      ef_search=ef_search or self.params.ef_search))
        scores, ids = self.index.search(l2_normalize(np.asarray(queries, np.float32)), min(k, len(self)))
        return scores, [[self.paths[i] for i in row if i >= 0] for row in ids]


def _write(folder: Path, index, vectors: np.ndarray, paths: list[str], manifest: dict) -> None:
    faiss = require("faiss", "faiss-cpu")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "index.faiss", faiss.serialize_index(index).tobytes())
    buf = _npy_bytes(vectors)
    atomic_write_bytes(folder / "embeddings.npy", buf)
    atomic_write_json(folder / "paths.json", paths)
    atomic_write_json(folder / MANIFEST, manifest)  # last: it makes the new files the index


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def build_index(model: str, images: str, out: str, params: IndexParams | None = None, batch_size: int = 64,
                add: bool = False, workers: int = 2) -> dict[str, Any]:
    """Embed every readable image under ``images`` with the artifact ``model`` and write (or extend) the index."""
    from export.backends import load_backend

    params = params or IndexParams()
    params.validate()
    folder = Path(out)
    t0 = time.perf_counter()
    backend = load_backend(model)
    fingerprint = backend.fingerprint()
    root = Path(images).resolve()
    old_vectors, old_paths = None, []
    if add:
        existing = ImageIndex(folder)
        if existing.manifest["model"]["sha256"] != fingerprint:
            raise ModelError(f"index '{folder}' was built with '{existing.model}', not '{model}' (their SHA-256 "
                             "differ): embeddings of two models do not mix; build a new index with --out")
        if Path(existing.manifest["root"]) != root:
            raise ConfigError(f"index '{folder}' covers '{existing.manifest['root']}'; --add takes new images under "
                              "that same folder")
        old_vectors, old_paths, params = existing.embeddings(), existing.paths, existing.params
    elif (folder / MANIFEST).is_file():
        raise ConfigError(f"'{folder}' already holds an index; pass --add to extend it or choose another --out")

    known = set(old_paths)
    scanned = scan_folder(root)
    keep = [i for i, rel in enumerate(scanned.paths) if rel not in known]
    if not keep:
        raise DataError(f"no new images under '{root}' (all {len(scanned)} are already indexed)")
    labels = None if scanned.labels is None else scanned.labels[keep]
    subset = dataclasses.replace(scanned, paths=tuple(scanned.paths[i] for i in keep), labels=labels)
    emb = embed_folder(backend, subset, batch_size=batch_size, workers=workers, desc="index")
    vectors = l2_normalize(emb.features)
    new_paths = [subset.paths[i] for i in emb.indices]
    if old_vectors is not None:
        vectors = np.concatenate([old_vectors, vectors])
    paths = old_paths + new_paths
    index = build_faiss(vectors, params)
    if params.kind == "ivf" and not params.nlist:
        params.nlist = index.nlist
    manifest = {"format": "edgedistill.index/1", "root": str(root),
                "model": {"path": str(Path(model).resolve()), "sha256": fingerprint, "runtime": backend.runtime,
                          "precision": backend.precision},
                "preprocess": backend.preprocess.to_dict(), "params": asdict(params), "dim": int(vectors.shape[1]),
                "num_images": len(paths), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write(folder, index, vectors, paths, manifest)
    return {"num_images": len(paths), "num_added": len(new_paths), "num_skipped": emb.skipped,
            "dim": int(vectors.shape[1]), "index": params.kind, "seconds": round(time.perf_counter() - t0, 3),
            "out": str(folder)}


def rebuild_index(source: str | Path, out: str | Path, params: IndexParams) -> dict[str, Any]:
    """Another index kind over an existing index's embeddings (no re-embedding): same model, root and paths."""
    params.validate()
    src = ImageIndex(source)
    t0 = time.perf_counter()
    vectors = src.embeddings()
    index = build_faiss(vectors, params)
    if params.kind == "ivf" and not params.nlist:
        params.nlist = index.nlist
    manifest = {**src.manifest, "params": asdict(params), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write(Path(out), index, vectors, src.paths, manifest)
    return {"num_images": len(src.paths), "dim": int(vectors.shape[1]), "index": params.kind,
            "seconds": round(time.perf_counter() - t0, 3), "out": str(out)}
