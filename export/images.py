"""Real images for calibration and parity checks, preprocessed for the model being exported."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from distill.batches import MemoryImages
from distill.core.errors import DataError
from distill.core.images import scan_folder
from distill.core.preprocess import Preprocess


def load_uint8(folder: str | Path, preprocess: Preprocess, limit: int,
               workers: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to ``limit`` readable images of ``folder`` (class-balanced), resized and cropped for the model, as a
    uint8 (N, 3, S, S) array (before normalisation: what the on-target reference bundle keeps), with their labels
    (or ``None`` for a flat folder)."""
    scanned = scan_folder(folder, limit)
    mem = MemoryImages(scanned, preprocess.input_size, preprocess.crop_pct, workers=workers, desc="load images")
    keep = mem.valid.numpy()
    if not keep.any():
        raise DataError(f"none of the images in '{folder}' could be read")
    labels = None if scanned.labels is None else scanned.labels[keep]
    return mem.images.numpy()[keep], labels


def load_images(
    folder: str | Path, preprocess: Preprocess, limit: int, workers: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`load_uint8`, normalised: a float32 (N, 3, S, S) network input, with the labels."""
    u8, labels = load_uint8(folder, preprocess, limit, workers)
    return preprocess.numpy_from_uint8(u8), labels


def random_uint8(preprocess: Preprocess, n: int, seed: int = 0) -> np.ndarray:
    """Uniform-noise uint8 images: a last resort that says little about real inputs (loudly warned)."""
    warnings.warn(
        "no --parity-data or --calib folder: checking parity on RANDOM NOISE images, which says little "
        "about real inputs; pass --parity-data DIR",
        stacklevel=2,
    )
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, preprocess.input_size, preprocess.input_size), dtype=np.uint8)
