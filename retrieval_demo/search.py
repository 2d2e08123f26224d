"""Query an index with images: embed them with the index's own model, then search, timing both."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from distill.core.errors import DataError, ModelError
from distill.core.images import UNREADABLE, load_rgb, resize_center_crop
from retrieval_demo.store import ImageIndex


class Searcher:
    """An index and the model that built it; ``search(images, k)`` returns ranked paths with scores."""

    def __init__(self, index_dir: str | Path, mmap: bool = False, device: str = "cpu"):
        from export.backends import load_backend

        self.index = ImageIndex(index_dir, mmap=mmap, device=device)
        model = Path(self.index.model)
        if not model.exists():
            raise ModelError(f"the index's model '{model}' is missing; restore it or rebuild the index")
        self.backend = load_backend(model)
        if self.backend.fingerprint() != self.index.manifest["model"]["sha256"]:
            raise ModelError(f"'{model}' changed since the index was built (SHA-256 differs); rebuild the index")
        self._lock = threading.Lock()  # runtimes are not all safe to call from several threads at once

    def decode(self, source: str | Path | IO[bytes]) -> np.ndarray:
        """One image (path or file object) -> (3, S, S) uint8 with the model's resize and centre crop."""
        try:
            img = load_rgb(source)
        except UNREADABLE as exc:
            name = getattr(source, "name", None) or str(source)
            raise DataError(f"'{name}' is not a readable image ({type(exc).__name__}); pass a JPEG, PNG, WebP or BMP "
                            "file") from None
        pre = self.backend.preprocess
        return np.asarray(resize_center_crop(img, pre.input_size, pre.crop_pct), dtype=np.uint8).transpose(2, 0, 1)

    def search(self, images: list[np.ndarray], k: int = 10, nprobe: int | None = None,
               ef_search: int | None = None) -> dict[str, Any]:
        """Decoded images (see :meth:`decode`) ->
        ``{"results": [[{"path", "score"}...]...], "embed_ms", "search_ms"}``."""
        x = self.backend.preprocess.numpy_from_uint8(np.stack(images))
        with self._lock:
            t0 = time.perf_counter()
            emb = self.backend(x)
            t1 = time.perf_counter()
            scores, paths = self.index.search(emb, k, nprobe=nprobe, ef_search=ef_search)
            t2 = time.perf_counter()
        results = [
            [{"path": p, "score": float(s)} for p, s in zip(row_paths, row_scores)]
            for row_paths, row_scores in zip(paths, scores)
        ]
        return {"results": results, "embed_ms": (t1 - t0) * 1e3, "search_ms": (t2 - t1) * 1e3}

    def search_files(self, files: list[str | Path], k: int = 10, **kw) -> dict[str, Any]:
        return self.search([self.decode(f) for f in files], k, **kw)
