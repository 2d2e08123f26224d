"""Teacher embeddings computed once and stored memory-mapped, so training never runs the teacher.

This is what CompRess and SimReg do for their largest teachers. A cache holds, for every image of a folder,
``views`` teacher embeddings as float16: view 0 is the centre crop (the image exactly as the trainer decodes
it), views 1.. are fixed random augmentations drawn once with a seeded generator. During training the student
still sees a fresh random augmentation each step, while the teacher's embedding comes from one of the fixed
views: the pair is no longer the same view, which is the price of not running the teacher (docs/RESULTS.md
measures it).

Layout of a cache folder::

    CACHE/meta.json        format, fingerprint parts, shape, image order (relative paths), readable mask
    CACHE/embeddings.npy   (N, views, D) float16, opened with numpy's memmap

A build is written in chunks and resumes after an interruption (:func:`build_teacher_cache`). The
fingerprint has four parts (teacher files and preprocessing, the data folder, the decode size, the view
recipe); a cache whose parts differ from the run's is refused with the part that changed named.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.augment import AugmentConfig, BatchAugment, resize_views
from distill.batches import BatchStream
from distill.core.atomic import atomic_write_bytes, atomic_write_json
from distill.core.errors import CheckpointError
from distill.core.images import ImageFolder
from distill.core.progress import progress
from distill.core.swap import switch_into_place
from distill.teachers import Teacher

CACHE_FORMAT = "edgedistill.teacher-cache/1"
META_FILE, EMB_FILE = "meta.json", "embeddings.npy"


def cache_fingerprint(teacher: Teacher, folder: ImageFolder, load_size: int, views: int,
                      augment: AugmentConfig, seed: int) -> dict[str, str]:
    """The four parts a cache must agree on with a training run, each a SHA-256 hex digest."""
    recipe = {"views": views, "seed": seed, "augment": asdict(augment) if views > 1 else None}
    return {
        "teacher": teacher.fingerprint(),
        "data": folder.fingerprint(),
        "decode_size": hashlib.sha256(str(load_size).encode()).hexdigest(),
        "views": hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest(),
    }


CHUNK_IMAGES = 4096  # images per resumable chunk of a cache being built


def is_teacher_cache(path: Path) -> bool:
    """Whether ``path`` is a folder this command wrote: its meta.json names the cache format."""
    try:
        return json.loads((path / META_FILE).read_text()).get("format") == CACHE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def refuse_foreign(out: Path) -> None:
    """``--overwrite`` replaces only a teacher cache: anything else at ``out`` (a training run, a user's folder, a
    file) is named and refused, before any work."""
    if is_teacher_cache(out):
        return
    found = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    if found == []:
        return  # an empty folder loses nothing
    what = "is a file" if found is None else f"holds {', '.join(found[:4])}{', ...' if len(found) > 4 else ''}"
    raise CheckpointError(f"--overwrite replaces only a teacher cache, and '{out}' is not one (it {what}); "
                          "choose another --out")


def _partial_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


@torch.no_grad()
def build_teacher_cache(teacher: Teacher, folder: ImageFolder, out: str | os.PathLike, *, load_size: int,
                        views: int = 1, augment: AugmentConfig | None = None, seed: int = 0, batch_size: int = 256,
                        workers: int = 2, device: torch.device | str = "cpu", overwrite: bool = False,
                        chunk_images: int = CHUNK_IMAGES) -> dict[str, Any]:
    """Embed every image of ``folder`` ``views`` times with ``teacher``; write the cache atomically to ``out``.

    The work is split in chunks of ``chunk_images`` images, each written (atomically) to ``.OUT.partial/``
    beside ``out`` as it completes, with the fingerprint of the whole build. A build that is killed resumes from
    its last complete chunk when run again with the same teacher, images and recipe (a different one starts
    over); the random views of a chunk come from a generator seeded by (seed, chunk), so a resumed cache equals
    an uninterrupted one. The chunks are assembled into ``out`` and renamed into place only at the end: an
    incomplete cache is never at ``out``, and an existing cache is only replaced with ``overwrite``.
    """
    out, device = Path(out), torch.device(device)
    if out.exists() and not overwrite:
        raise CheckpointError(f"'{out}' already exists; pass --overwrite to replace it or choose another --out")
    if out.exists():
        refuse_foreign(out)
    augment = augment or AugmentConfig.light()
    t_pre, dim = teacher.preprocess, teacher.embedding_dim
    fingerprint = cache_fingerprint(teacher, folder, load_size, views, augment, seed)
    partial = _partial_dir(out)
    state_file = partial / "build.json"
    if partial.is_dir():
        try:
            same = json.loads(state_file.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:  # another build's leftovers: start over
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_file, {"fingerprint": fingerprint, "chunk_images": chunk_images, "num_images": len(folder)})
    starts = list(range(0, len(folder), chunk_images))
    done = [i for i, _ in enumerate(starts) if (partial / f"chunk-{i:05d}.npz").is_file()]
    aug = BatchAugment(augment, load_size)
    bar = progress(total=len(folder), initial=min(len(done) * chunk_images, len(folder)), desc="teacher cache",
                   unit="img")
    for c, start in enumerate(starts):
        if c in done:
            continue
        part = folder.subset(np.arange(start, min(start + chunk_images, len(folder))))
        emb = np.zeros((len(part), views, dim), dtype=np.float16)
        stream = BatchStream(part, load_size, batch_size, workers=workers, drop_last=False, shuffle=False)
        g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + c)
        for batch in stream.epoch(0):
            images = batch.images.to(device)
            idx = batch.indices.numpy()
            for v in range(views):
                view = images.float().div_(255) if v == 0 else aug(images, g)
                emb[idx, v] = teacher(t_pre.normalize(resize_views(view, t_pre.input_size))).float().cpu().numpy()
            bar.update(len(idx))
        readable = np.ones(len(part), dtype=bool)
        readable[sorted(stream.skipped)] = False
        bar.update(len(stream.skipped))
        buf = io.BytesIO()
        np.savez(buf, embeddings=emb, readable=readable)
        atomic_write_bytes(partial / f"chunk-{c:05d}.npz", buf.getvalue())
    bar.close()
    return _assemble(partial, out, starts, folder, teacher, dim, views, load_size, seed, augment, fingerprint)


def _assemble(partial: Path, out: Path, starts: list[int], folder: ImageFolder, teacher: Teacher, dim: int,
              views: int, load_size: int, seed: int, augment: AugmentConfig, fingerprint: dict) -> dict[str, Any]:
    """The chunks into one (N, views, D) float16 array and meta.json, renamed into place as ``out``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".assemble", dir=out.parent))
    try:
        emb = np.lib.format.open_memmap(tmp / EMB_FILE, mode="w+", dtype=np.float16, shape=(len(folder), views, dim))
        readable = np.ones(len(folder), dtype=bool)
        for c, start in enumerate(starts):
            with np.load(partial / f"chunk-{c:05d}.npz") as z:
                n = len(z["readable"])
                emb[start:start + n] = z["embeddings"]
                readable[start:start + n] = z["readable"]
        emb.flush()
        del emb
        meta = {"format": CACHE_FORMAT, "teacher": teacher.name, "num_images": len(folder), "views": views,
                "dim": dim, "dtype": "float16", "decode_size": load_size, "seed": seed,
                "augment": asdict(augment) if views > 1 else None, "fingerprint": fingerprint,
                "paths": list(folder.paths), "readable": readable.tolist()}
        (tmp / META_FILE).write_text(json.dumps(meta) + "\n")
        switch_into_place(tmp, out)  # the old cache (if any) and the new one trade places in one step
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(partial, ignore_errors=True)
    return {"cache": str(out), "teacher": teacher.name, "num_images": len(folder), "views": views, "dim": dim,
            "num_skipped": int((~readable).sum()), "bytes": int(len(folder) * views * dim * 2)}


RESIDENT_BYTES = 2 << 30  # a run's cached rows up to 2 GiB are kept on a CUDA device (TeacherCache.lookup)


class TeacherCache:
    """A cache opened for a training run: :meth:`lookup` maps folder positions to teacher embeddings.

    ``rows``: for each image of the run's folder (which may be a ``--limit`` subset of the cached one), its
    row in the cache.
    """

    def __init__(self, path: str | os.PathLike, folder: ImageFolder, expected: dict[str, str] | None = None):
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file() or not (self.path / EMB_FILE).is_file():
            raise CheckpointError(f"'{self.path}' is not a teacher cache (no {META_FILE}/{EMB_FILE}); "
                                  "make one with: edgedistill cache-teacher --data DIR --teacher SPEC --out CACHE")
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read '{meta_path}' ({exc}); rebuild the cache with edgedistill "
                                  "cache-teacher") from None
        if self.meta.get("format") != CACHE_FORMAT:
            raise CheckpointError(f"'{self.path}' has format {self.meta.get('format')!r}, not {CACHE_FORMAT}; "
                                  "rebuild it with edgedistill cache-teacher")
        if expected is not None:
            self.check(expected)
        try:
            self.embeddings = np.load(self.path / EMB_FILE, mmap_mode="r")
            n, self.views, self.dim = self.embeddings.shape
        except (OSError, ValueError) as exc:  # truncated or damaged: mmap longer than the file, bad header
            raise CheckpointError(f"teacher cache '{self.path / EMB_FILE}' is damaged ({exc}); rebuild it with "
                                  "edgedistill cache-teacher --overwrite") from None
        if n != len(self.meta.get("paths", ())):
            raise CheckpointError(f"teacher cache '{self.path}' holds {n} rows for {len(self.meta.get('paths', ()))} "
                                  "images; rebuild it with edgedistill cache-teacher --overwrite")
        position = {p: i for i, p in enumerate(self.meta["paths"])}
        missing = [p for p in folder.paths if p not in position]
        if missing:
            raise CheckpointError(f"teacher cache '{self.path}' has no entry for '{missing[0]}' "
                                  f"({len(missing)} images missing); rebuild it for this --data")
        self.rows = np.array([position[p] for p in folder.paths], dtype=np.int64)
        self.readable = np.asarray(self.meta["readable"], dtype=bool)
        self._resident: tuple[torch.device, torch.Tensor] | None = None  # (device, rows): _resident_rows

    def covered(self, full: ImageFolder) -> ImageFolder:
        """The images of ``full`` (a scanned --data folder) that the cache holds, in cache order: the set whose
        fingerprint the cache recorded (a cache may cover a --limit subset)."""
        position = {p: i for i, p in enumerate(full.paths)}
        missing = [p for p in self.meta["paths"] if p not in position]
        if missing:
            raise CheckpointError(f"teacher cache '{self.path}' holds '{missing[0]}', which is no longer under the "
                                  "data folder; rebuild it with edgedistill cache-teacher")
        return full.subset(np.array([position[p] for p in self.meta["paths"]], dtype=np.int64))

    def check(self, expected: dict[str, str]) -> None:
        """Refuse a cache whose fingerprint differs from the run's, naming the part that changed."""
        saved = self.meta.get("fingerprint", {})
        reasons = {"teacher": "another teacher (or preprocessing)", "data": "other images (the folder changed)",
                   "decode_size": "another decode size (--img-size or the teacher's input size differ)",
                   "views": "another view recipe (--views, seed or augmentation differ)"}
        for part, why in reasons.items():
            if part in expected and saved.get(part) != expected[part]:
                raise CheckpointError(f"teacher cache '{self.path}' was computed with {why}; rebuild it with "
                                      "edgedistill cache-teacher, or train without --teacher-cache")

    def lookup(self, positions: torch.Tensor, num_views: int, generator: torch.Generator | None,
               device: torch.device, resident: bool | None = None) -> torch.Tensor:
        """(num_views, B, D) float32: for each image, a cached view drawn at random (view 0 when only one).

        ``resident`` (default: on a CUDA device, when the run's rows fit in RESIDENT_BYTES) looks up in a copy of
        the run's rows kept on ``device``: no read of the memory map and no copy to the device per step, so a
        GPU step never waits for the host. Both ways draw the same views from ``generator``.
        """
        b = len(positions)
        choice = None
        if self.views > 1:
            choice = torch.randint(0, self.views, (num_views, b), generator=generator, device=generator.device)
        if resident is None:
            resident = device.type == "cuda" and len(self.rows) * self.views * self.dim * 2 <= RESIDENT_BYTES
        if resident:
            table = self._resident_rows(device)
            picked = table[positions.to(device, non_blocking=True)]  # (B, views, D)
            if choice is None:
                return picked[:, 0].float().unsqueeze(0).expand(num_views, -1, -1)
            return picked[torch.arange(b, device=device), choice.to(device)].float()  # (num_views, B, D)
        rows = self.rows[positions.cpu().numpy()]
        picks = np.zeros((num_views, b), dtype=np.int64) if choice is None else choice.cpu().numpy()
        out = np.stack([self.embeddings[rows, picks[v]] for v in range(num_views)])
        return torch.from_numpy(out.astype(np.float32)).to(device, non_blocking=True)

    def _resident_rows(self, device: torch.device) -> torch.Tensor:
        """(images of the run's folder, views, D) float16 on ``device``, copied once."""
        if self._resident is None or self._resident[0] != device:
            self._resident = (device, torch.from_numpy(np.ascontiguousarray(self.embeddings[self.rows])).to(device))
        return self._resident[1]

    def mean(self, positions: np.ndarray) -> torch.Tensor:
        """(D,) the mean view-0 embedding of the given folder positions (the teacher centre)."""
        rows = np.sort(self.rows[positions])
        rows = rows[self.readable[rows]]
        return torch.from_numpy(np.asarray(self.embeddings[rows, 0], dtype=np.float32).mean(0))
