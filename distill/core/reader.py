"""Batches of decoded images without torch: how the deploy side (retrieval, bench, evaluating an exported
artifact) reads a folder.

Each image is decoded to a (3, S, S) uint8 array (shorter side resized, centre-cropped: the model's own
preprocessing up to normalisation). Decoding runs in a small thread pool, one batch ahead of the consumer: Pillow
releases the GIL while it decodes and resizes, so threads overlap decoding with inference without the worker
processes (and the torch ``DataLoader``) the training side uses (:mod:`distill.batches`). An unreadable image is
skipped, warned about and counted; it never stops the pass.
"""
from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import numpy as np

from distill.core.images import UNREADABLE, ImageFolder, load_rgb, resize_center_crop


def decode_uint8(path, size: int, crop_pct: float = 1.0) -> np.ndarray | None:
    """(3, size, size) uint8 CHW array of an image file, or ``None`` when it cannot be read."""
    try:
        img = resize_center_crop(load_rgb(path), size, crop_pct)
    except UNREADABLE:
        return None
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def warn_skipped(folder: ImageFolder, skipped: list[int], limit: int = 5) -> None:
    """One warning line per unreadable image (the first few), then a count."""
    for i in skipped[:limit]:
        warnings.warn(f"skipped unreadable image '{folder.absolute(i)}'", stacklevel=2)
    if len(skipped) > limit:
        warnings.warn(f"... and {len(skipped) - limit} more unreadable images skipped", stacklevel=2)


def read_batches(folder: ImageFolder, size: int, batch_size: int, crop_pct: float = 1.0,
                 workers: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray, list[int]]]:
    """Yield ``(images, indices, skipped)`` per batch of the folder, in order: (B, 3, S, S) uint8 of the readable
    images, their (B,) int64 positions in the folder, and the positions that could not be read. ``workers`` decoding
    threads (0: decode in the calling thread)."""
    chunks = [np.arange(i, min(i + batch_size, len(folder))) for i in range(0, len(folder), batch_size)]

    def decode(i: int) -> np.ndarray | None:
        return decode_uint8(folder.absolute(int(i)), size, crop_pct)

    def assemble(chunk: np.ndarray, arrays: list[np.ndarray | None]):
        good = [(a, int(i)) for a, i in zip(arrays, chunk) if a is not None]
        skipped = [int(i) for a, i in zip(arrays, chunk) if a is None]
        if not good:
            return np.empty((0, 3, size, size), np.uint8), np.empty(0, np.int64), skipped
        return np.stack([a for a, _ in good]), np.asarray([i for _, i in good], np.int64), skipped

    if workers <= 0:
        for chunk in chunks:
            yield assemble(chunk, [decode(i) for i in chunk])
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgedistill-decode") as pool:
        def submit(chunk: np.ndarray) -> list[Future]:
            return [pool.submit(decode, i) for i in chunk]

        pending = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            current = pending
            pending = submit(chunks[n + 1]) if n + 1 < len(chunks) else []  # one batch ahead
            yield assemble(chunk, [f.result() for f in current])
