"""An image index on disk: a faiss index over L2-normalised embeddings (inner product = cosine), the embeddings,
the image paths relative to the indexed root, and a manifest with the model's fingerprint and preprocessing.

    INDEX_DIR/
      manifest.json     model path + SHA-256, preprocessing, index kind and parameters, root, counts, bytes per
                        vector of the index file
      index.faiss       faiss.IndexFlatIP | IndexIVFFlat | IndexHNSWFlat | [OPQ +] IndexIVFPQ (inner product)
      embeddings.npy    (N, D) float32, L2-normalised
      paths.json        N paths relative to the root, in index order
      files.json        N [size, mtime_ns] of the indexed files, so that --add finds changed and removed ones

IVF-PQ stores each vector as ``pq_m`` bytes of product-quantisation codes (plus its 8-byte id), a fraction of
the 4 * D bytes of a flat index; ``mmap`` loading (faiss ``IO_FLAG_MMAP``) leaves an IVF index's inverted lists
on disk, so an index larger than RAM can be served.

Every file is written to a temporary name and renamed, manifest last: a crash leaves the old index whole.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from distill.core.atomic import atomic_write_bytes, atomic_write_json
from distill.core.deps import require
from distill.core.embeddings import embed_folder, l2_normalize
from distill.core.errors import ConfigError, DataError, ModelError, first_line
from distill.core.images import scan_folder
from distill.core.log import log
from distill.core.swap import staged_folder
from retrieval_demo.auto import choose_index, default_budget, recall_at_k, rerank_exact, tune_recall
from retrieval_demo.kinds import build_faiss, index_kind, ivf_of, set_search_params
from retrieval_demo.params import IndexParams

MANIFEST = "manifest.json"
FILES = "files.json"


class ImageIndex:
    """A loaded index: ``search(queries, k)`` on (Q, D) embeddings gives (scores, paths)."""

    def __init__(self, folder: str | Path, mmap: bool = False, device: str = "cpu"):
        """``mmap``: map index.faiss instead of reading it (faiss IO_FLAG_MMAP: IVF lists stay on disk);
        ``device`` ``cuda[:N]``: search a clone on that GPU (retrieval_demo.gpu)."""
        from retrieval_demo.gpu import GpuIndex, parse_device

        self.folder = Path(folder)
        gpu_id = parse_device(device)
        if gpu_id is not None and mmap:
            raise ConfigError("--mmap keeps the index on disk and --device cuda copies it to the GPU; use one of them")
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
                            f"({type(exc).__name__}: {first_line(exc)}); {rebuild}") from None
        try:
            if mmap:
                self.index = faiss.read_index(str(self.folder / "index.faiss"),
                                              faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            else:
                self.index = faiss.deserialize_index(np.fromfile(self.folder / "index.faiss", dtype=np.uint8))
        except (OSError, RuntimeError, ValueError) as exc:  # faiss raises RuntimeError with its C++ stack
            raise DataError(f"index '{self.folder}' has a damaged or missing index.faiss "
                            f"({first_line(exc)}); "
                            f"{rebuild}") from None
        if self.index.ntotal != len(self.paths):
            raise DataError(f"index '{self.folder}' holds {self.index.ntotal} vectors for {len(self.paths)} paths; "
                            f"{rebuild}")
        self.gpu = None if gpu_id is None else GpuIndex(self.index, index_kind(self.params.kind), gpu_id)
        self._set_params(self.params)

    def _set_params(self, params: IndexParams) -> None:
        """nprobe / efSearch on the index, and nprobe on its GPU clone where there is one."""
        set_search_params(self.index, params)
        if self.gpu is not None:
            self.gpu.set_effort(params)

    @property
    def model(self) -> str:
        return self.manifest["model"]["path"]

    def __len__(self) -> int:
        return len(self.paths)

    def embeddings(self, mmap: bool = False) -> np.ndarray:
        """The stored (N, D) normalised embeddings; ``mmap`` maps the file instead of reading it."""
        path = self.folder / "embeddings.npy"
        try:
            emb = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:  # missing, truncated ("not fully written"), bad header
            raise DataError(f"'{path}' is damaged or missing ({str(exc).splitlines()[0]}); rebuild the index "
                              "without --add") from None
        if emb.ndim != 2 or len(emb) != len(self.paths):
            raise DataError(f"'{path}' holds {emb.shape} for {len(self.paths)} indexed images; rebuild the index "
                              "without --add")
        return emb

    def file_stamps(self) -> list[list[int]]:
        """[size, mtime_ns] per indexed path ([] for an index written before files.json existed)."""
        path = self.folder / FILES
        if not path.is_file():
            return []
        try:
            stamps = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        return stamps if len(stamps) == len(self.paths) else []

    def search(self, queries: np.ndarray, k: int = 10, nprobe: int | None = None,
               ef_search: int | None = None) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k cosine neighbours of (Q, D) query embeddings: scores (Q, k) and relative paths."""
        if nprobe or ef_search:
            self._set_params(replace(self.params, nprobe=nprobe or self.params.nprobe,
                                     ef_search=ef_search or self.params.ef_search))
        index = self.gpu or self.index
        q = l2_normalize(np.asarray(queries, np.float32))
        k = min(k, len(self))
        if self.params.rerank:
            _, ids = index.search(q, min(max(k, self.params.rerank), len(self)))
            scores, ids = rerank_exact(self.vectors_on_disk(), q, ids, k)
        else:
            scores, ids = index.search(q, k)
        return scores, [[self.paths[i] for i in row if i >= 0] for row in ids]

    def vectors_on_disk(self) -> np.ndarray:
        """embeddings.npy memory-mapped: re-ranking reads only the candidates' rows, the index keeps its RAM."""
        if getattr(self, "_mapped", None) is None:
            self._mapped = self.embeddings(mmap=True)
        return self._mapped


def _write(folder: Path, index, vectors: np.ndarray, paths: list[str], manifest: dict,
           files: list[list[int]] | None = None) -> None:
    """The index's files, written into a sibling folder and switched into place whole (distill.core.swap): an
    interrupted build or --add leaves the old index as it was, never a mix of old and new files."""
    faiss = require("faiss", "faiss-cpu")
    data = faiss.serialize_index(index).tobytes()
    manifest["index_bytes"] = len(data)
    manifest["bytes_per_vector"] = round(len(data) / max(len(paths), 1), 2)
    with staged_folder(folder) as new:
        atomic_write_bytes(new / "index.faiss", data)
        atomic_write_bytes(new / "embeddings.npy", _npy_bytes(vectors))
        atomic_write_json(new / "paths.json", paths)
        if files is not None:
            atomic_write_json(new / FILES, files)
        atomic_write_json(new / MANIFEST, manifest)


def check_out(folder: Path) -> None:
    """Refuse, before any work, an --out that is a file, or a folder that holds something other than an index:
    the new index replaces the folder whole."""
    if folder.is_file() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"--out '{folder}' is a file, not a folder; choose a folder for the index")
    if folder.is_dir() and not (folder / MANIFEST).is_file() and any(folder.iterdir()):
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:3])
        raise ConfigError(f"--out '{folder}' is not an index but holds files ({found}, ...); choose a new or empty "
                          "folder for the index")


def build_measured(vectors: np.ndarray, params: IndexParams) -> tuple[Any, float | None, dict | None, IndexParams]:
    """Build the index (choosing it first for ``auto``: retrieval_demo.auto) and measure its recall@10 against exact
    search, raising nprobe / efSearch to the target for ``auto``. Returns the index, its recall (None when exact),
    auto's record and the resolved parameters (a copy: ``params`` is left as given)."""
    auto = None
    if params.kind == "auto":
        budget = params.max_memory or default_budget()
        choice = choose_index(len(vectors), int(vectors.shape[1]), budget)
        params = replace(params, kind=choice.kind, pq_m=choice.pq_m, opq=choice.opq, rerank=choice.rerank,
                         max_memory=budget)
        auto = {"chosen": choice.kind, "reason": choice.reason, "max_memory": budget,
                "estimated_bytes": choice.estimated_bytes}
    index = build_faiss(vectors, params)
    kind = index_kind(params.kind)
    if kind.uses_nlist and not params.nlist:
        params = replace(params, nlist=ivf_of(index).nlist)
    recall = None
    if not kind.exact:  # approximate: measure what it loses against exact search (and tune, for auto)
        if auto is not None:
            recall, auto["trials"], params = tune_recall(index, vectors, params, params.target_recall)
        else:
            set_search_params(index, params)
            recall = recall_at_k(index, vectors, rerank=params.rerank)
    return index, recall, auto, params


def file_stamp(path: Path) -> list[int]:
    """[size, mtime_ns] of a file: what --add compares to find a changed image ([-1, -1] when unreadable)."""
    try:
        st = path.stat()
    except OSError:
        return [-1, -1]
    return [st.st_size, st.st_mtime_ns]


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def build_index(model: str, images: str, out: str, params: IndexParams | None = None, batch_size: int = 64,
                add: bool = False, workers: int = 2, overwrite: bool = False) -> dict[str, Any]:
    """Embed every readable image under ``images`` with the artifact ``model`` and write (or extend) the index."""
    from export.backends import load_backend

    params = params or IndexParams()
    params.validate()
    folder = Path(out)
    check_out(folder)
    t0 = time.perf_counter()
    backend = load_backend(model)
    fingerprint = backend.fingerprint()
    root = Path(images).resolve()
    old_vectors, old_paths, old_stamps = None, [], []
    if add:
        existing = ImageIndex(folder)
        if existing.manifest["model"]["sha256"] != fingerprint:
            raise ModelError(f"index '{folder}' was built with '{existing.model}', not '{model}' (their SHA-256 "
                             "differ): embeddings of two models do not mix; build a new index with --out")
        if Path(existing.manifest["root"]) != root:
            raise ConfigError(f"index '{folder}' covers '{existing.manifest['root']}'; --add takes new images under "
                              "that same folder")
        old_vectors, old_paths, params = existing.embeddings(), existing.paths, existing.params
        old_stamps = existing.file_stamps()
    elif (folder / MANIFEST).is_file() and not overwrite:  # --overwrite: the new index is switched in whole at the end
        raise ConfigError(f"'{folder}' already holds an index; pass --add to extend it, --overwrite to replace it, "
                          "or choose another --out")

    scanned = scan_folder(root)
    present = set(scanned.paths)
    current = {rel: file_stamp(root / rel) for rel in scanned.paths}
    # unchanged: indexed before, still there, same size and mtime (an index without files.json: trusted as is)
    unchanged = [i for i, rel in enumerate(old_paths)
                 if rel in present and (not old_stamps or old_stamps[i] == current[rel])]
    removed = [rel for rel in old_paths if rel not in present]
    changed = len(old_paths) - len(unchanged) - len(removed)
    known = {old_paths[i] for i in unchanged}
    keep = [i for i, rel in enumerate(scanned.paths) if rel not in known]
    if not keep and not removed:
        raise DataError(f"no new, changed or removed images under '{root}' (all {len(scanned)} are indexed as they "
                        "are)")
    new_paths, skipped = [], 0
    vectors = np.zeros((0, old_vectors.shape[1] if old_vectors is not None else 0), np.float32)
    if keep:
        labels = None if scanned.labels is None else scanned.labels[keep]
        subset = dataclasses.replace(scanned, paths=tuple(scanned.paths[i] for i in keep), labels=labels)
        emb = embed_folder(backend, subset, batch_size=batch_size, workers=workers, desc="index")
        vectors, skipped = l2_normalize(emb.features), emb.skipped
        new_paths = [subset.paths[i] for i in emb.indices]
    if old_vectors is not None:
        vectors = np.concatenate([old_vectors[unchanged], vectors]) if len(vectors) else old_vectors[unchanged]
    paths = [old_paths[i] for i in unchanged] + new_paths
    if not paths:
        raise DataError(f"no readable images left under '{root}'")
    index, recall, auto, params = build_measured(vectors, params)
    manifest = {"format": "edgedistill.index/1", "root": str(root),
                "model": {"path": str(Path(model).resolve()), "sha256": fingerprint, "runtime": backend.runtime,
                          "precision": backend.precision},
                "preprocess": backend.preprocess.to_dict(), "params": asdict(params), "dim": int(vectors.shape[1]),
                "num_images": len(paths), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "recall@10": 1.0 if recall is None else round(recall, 4)}
    if auto is not None:
        manifest["auto"] = auto
    _write(folder, index, vectors, paths, manifest, [current[rel] for rel in paths])
    if auto is not None and manifest["index_bytes"] > auto["max_memory"]:
        log.warning(f"note: the built index takes {manifest['index_bytes'] / 1e6:.1f} MB, over the estimate and the "
                    f"--max-memory budget ({params.max_memory / 1e6:.1f} MB)")
    return {"num_images": len(paths), "num_added": len(new_paths) - changed, "num_changed": changed,
            "num_removed": len(removed), "num_skipped": skipped, "bytes_per_vector": manifest["bytes_per_vector"],
            "dim": int(vectors.shape[1]), "index": params.kind, "recall@10": manifest["recall@10"],
            **({"auto": {k: v for k, v in auto.items() if k != "trials"}} if auto else {}),
            "seconds": round(time.perf_counter() - t0, 3), "out": str(folder)}


def rebuild_index(source: str | Path, out: str | Path, params: IndexParams) -> dict[str, Any]:
    """Another index kind over an existing index's embeddings (no re-embedding): same model, root and paths."""
    params.validate()
    check_out(Path(out))
    src = ImageIndex(source)
    t0 = time.perf_counter()
    vectors = src.embeddings()
    index, recall, auto, params = build_measured(vectors, params)
    manifest = {**src.manifest, "params": asdict(params), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "recall@10": 1.0 if recall is None else round(recall, 4)}
    manifest.pop("auto", None)
    if auto is not None:
        manifest["auto"] = auto
    stamps = src.file_stamps()
    _write(Path(out), index, vectors, src.paths, manifest, stamps or None)
    return {"num_images": len(src.paths), "dim": int(vectors.shape[1]), "index": params.kind,
            "recall@10": manifest["recall@10"], "seconds": round(time.perf_counter() - t0, 3), "out": str(out)}
