"""Batches of uint8 images from an :class:`~distill.core.images.ImageFolder`, streamed or decoded once into memory.

Images are decoded to fixed-size uint8 tensors (shorter side resized, centre-cropped) by data-loader workers;
everything after that (augmentation, normalisation) runs on batched tensors on the training device. An
unreadable image is skipped and reported in :attr:`Batch.skipped`; it never stops an epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from distill.core.images import ImageFolder
from distill.core.progress import progress
from distill.core.reader import decode_uint8, warn_skipped


@dataclass
class Batch:
    """``images``: (B, 3, S, S) uint8; ``indices``: (B,) int64 positions in the folder; ``skipped``: unreadable
    positions that were dropped from this batch."""

    images: torch.Tensor
    indices: torch.Tensor
    skipped: list[int] = field(default_factory=list)


class ImageDataset(Dataset):
    """Decodes image ``i`` of a folder to a (3, size, size) uint8 tensor, or ``None`` when it is unreadable."""

    def __init__(self, folder: ImageFolder, size: int, crop_pct: float = 1.0):
        self.folder, self.size, self.crop_pct = folder, size, crop_pct

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int]:
        arr = decode_uint8(self.folder.absolute(i), self.size, self.crop_pct)
        return (None if arr is None else torch.from_numpy(arr)), i


def collate_skipping(items: list[tuple[torch.Tensor | None, int]]) -> Batch:
    """Stack the readable images of a batch; record the unreadable ones."""
    good = [(img, i) for img, i in items if img is not None]
    skipped = [i for img, i in items if img is None]
    if good:
        images = torch.stack([img for img, _ in good])
        indices = torch.tensor([i for _, i in good], dtype=torch.int64)
    else:
        images = torch.empty(0, dtype=torch.uint8)
        indices = torch.empty(0, dtype=torch.int64)
    return Batch(images, indices, skipped)


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The sample order of one epoch: a permutation seeded by (seed, epoch), sharded by rank.

    Every rank gets the same number of samples (the order is padded by wrapping around, like
    ``DistributedSampler``), so that collective operations stay in step.
    """
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g).numpy()
    else:
        order = np.arange(n)
    if world_size > 1:
        per_rank = math.ceil(n / world_size)
        order = np.resize(order, per_rank * world_size)  # wrap around to pad
        order = order[rank::world_size]
    return order


def batch_chunks(order: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and chunks and len(chunks[-1]) < batch_size:
        chunks.pop()
    return chunks


class MemoryImages:
    """A whole folder decoded once into one (N, 3, S, S) uint8 tensor (for test-bed-sized data).

    CIFAR-10's 50,000 training images take 150 MB at 32x32; decoding them once removes JPEG decoding from
    every epoch, which otherwise bounds the epoch time on a 2-core machine.
    """

    def __init__(self, folder: ImageFolder, size: int, crop_pct: float = 1.0, workers: int = 0, desc: str = "decode"):
        n = len(folder)
        self.images = torch.empty((n, 3, size, size), dtype=torch.uint8)
        self.valid = torch.zeros(n, dtype=torch.bool)
        self.skipped: list[int] = []
        loader = DataLoader(ImageDataset(folder, size, crop_pct), batch_size=256, num_workers=workers,
                            collate_fn=collate_skipping)
        for batch in progress(loader, desc=desc, total=len(loader), unit="batch"):
            if len(batch.indices):
                self.images[batch.indices] = batch.images
                self.valid[batch.indices] = True
            self.skipped.extend(batch.skipped)
        warn_skipped(folder, self.skipped)

    def nbytes(self) -> int:
        return self.images.numel()


def estimate_bytes(num_images: int, size: int) -> int:
    return num_images * 3 * size * size


class BatchStream:
    """Batches of one epoch, from memory or streamed by data-loader workers.

    ``start_batch`` skips the first batches of the epoch (to resume mid-epoch). ``skipped`` accumulates the
    positions of unreadable images met so far.
    """

    def __init__(self, folder: ImageFolder, size: int, batch_size: int, *, crop_pct: float = 1.0,
                 memory: MemoryImages | None = None, workers: int = 0, pin_memory: bool = False,
                 drop_last: bool = True, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.folder, self.size, self.batch_size = folder, size, batch_size
        self.crop_pct, self.memory, self.workers, self.pin_memory = crop_pct, memory, workers, pin_memory
        self.drop_last, self.shuffle, self.seed = drop_last, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.skipped: set[int] = set(memory.skipped) if memory is not None else set()
        if memory is not None:
            self._positions = torch.nonzero(memory.valid).flatten().numpy()
        else:
            self._positions = np.arange(len(folder))

    def batches_per_epoch(self) -> int:
        n = len(self._positions)
        per_rank = math.ceil(n / self.world_size) if self.world_size > 1 else n
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        order = epoch_order(len(self._positions), shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                            rank=self.rank, world_size=self.world_size)
        chunks = batch_chunks(self._positions[order], self.batch_size, self.drop_last)[start_batch:]
        if self.memory is not None:
            for chunk in chunks:
                idx = torch.from_numpy(chunk)
                yield Batch(self.memory.images.index_select(0, idx), idx)
            return
        loader = DataLoader(
            ImageDataset(self.folder, self.size, self.crop_pct),
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            collate_fn=collate_skipping,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            prefetch_factor=4 if self.workers > 0 else None,
        )
        for batch in loader:
            new = [i for i in batch.skipped if i not in self.skipped]
            if new:
                warn_skipped(self.folder, new)
                self.skipped.update(new)
            if len(batch.indices):
                yield batch
