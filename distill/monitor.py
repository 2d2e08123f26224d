"""Convergence you can see: weighted kNN of the student on a small labelled subset, during training.

``train --val DIR --eval-every N`` evaluates the student backbone (no head, eval mode, the deployable
preprocessing) every N steps with the same weighted kNN as ``edgedistill eval`` (DINO's ``eval_knn``: k = 20,
T = 0.07), on a bounded bank (a class-balanced subset of ``--data``, ``--eval-bank`` images) and a bounded
query set (a class-balanced subset of ``--val``, ``--eval-queries`` images). Both subsets are decoded once
into memory when the run starts, so an evaluation costs two forward passes over a few thousand images.

The numbers are a *curve*, not the final result: a smaller bank scores a little lower than the full bank of
the end-of-run evaluation (``eval.json``), but the same subsets are used at every point of a run.
"""
from __future__ import annotations

import numpy as np
import torch

from distill.batches import MemoryImages
from distill.core.embeddings import FolderEmbeddings, knn_protocols
from distill.core.errors import DataError
from distill.core.images import ImageFolder, scan_folder
from distill.core.preprocess import Preprocess
from distill.evaluate import align_labels


def _decoded(folder: ImageFolder, pre: Preprocess, workers: int, desc: str) -> tuple[torch.Tensor, np.ndarray]:
    mem = MemoryImages(folder, pre.input_size, crop_pct=pre.crop_pct, workers=workers, desc=desc)
    keep = mem.valid.numpy()
    return mem.images[mem.valid], folder.labels[keep]


class KnnMonitor:
    """Weighted kNN of a backbone on fixed, pre-decoded bank and query subsets."""

    def __init__(self, data: str, val: str, pre: Preprocess, *, bank_size: int = 5000, num_queries: int = 2000,
                 k: int = 20, t: float = 0.07, workers: int = 0, batch_size: int = 512):
        bank_folder = scan_folder(data, bank_size)
        val_folder = scan_folder(val, num_queries)
        if bank_folder.labels is None or val_folder.labels is None:
            raise DataError("--eval-every needs class folders (root/<class>/<image>) in both --data and --val")
        val_folder = align_labels(bank_folder, val_folder)
        self.pre, self.k, self.t, self.batch_size = pre, k, t, batch_size
        self.num_classes = len(bank_folder.classes)
        self.bank, self.bank_labels = _decoded(bank_folder, pre, workers, "decode kNN bank")
        self.queries, self.query_labels = _decoded(val_folder, pre, workers, "decode kNN queries")

    @torch.no_grad()
    def _embed(self, backbone: torch.nn.Module, images: torch.Tensor, device: torch.device) -> np.ndarray:
        out = []
        for chunk in images.split(self.batch_size):
            x = self.pre.from_uint8(chunk).to(device)
            out.append(backbone(x).float().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, backbone: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """kNN top-1/top-5 and 1-NN of ``backbone`` (B, 3, S, S) -> (B, D); restores its train/eval mode."""
        was_training = backbone.training
        backbone.eval()
        try:
            bank = FolderEmbeddings(
                self._embed(backbone, self.bank, device), self.bank_labels, np.arange(len(self.bank)), 0
            )
            queries = FolderEmbeddings(
                self._embed(backbone, self.queries, device), self.query_labels, np.arange(len(self.queries)), 0
            )
        finally:
            backbone.train(was_training)
        return knn_protocols(bank, queries, self.k, self.t, num_classes=self.num_classes)
