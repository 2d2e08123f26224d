"""Frozen-feature protocols beyond kNN: a linear probe and cluster alignment (both from CompRess, arXiv 2010.14713).

Both take precomputed (N, D) features with labels, so they run in seconds on cached embeddings.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from distill.core.embeddings import l2_normalize


@dataclass(frozen=True)
class LinearRecipe:
    """CompRess's linear evaluation (UMBCvision/CompRess ``eval_linear.py``): L2-normalise, standardise with the
    train split's mean and ``sqrt(var + 1e-5)``, one linear layer, SGD lr 0.01 momentum 0.9 weight decay 1e-4,
    40 epochs, lr x0.1 at epochs 15 and 30. Numbers from other recipes do not compare."""

    epochs: int = 40
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (15, 30)
    batch_size: int = 256
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 num_classes: int | None = None, recipe: LinearRecipe = LinearRecipe()) -> dict:
    """Train a linear classifier on frozen (N, D) train features; top-1 on train and val."""
    num_classes = num_classes or int(max(train_y.max(), val_y.max())) + 1
    tr, va = l2_normalize(train_x), l2_normalize(val_x)
    # fixed, from the train split; the 1e-5 under the root keeps a near-constant feature near zero instead of
    # blowing it up (CompRess's sqrt(var + 1e-5), not std + eps)
    mean, std = tr.mean(0, keepdims=True), np.sqrt(tr.var(0, keepdims=True) + 1e-5)
    xt, xv = torch.from_numpy((tr - mean) / std), torch.from_numpy((va - mean) / std)
    yt = torch.from_numpy(np.asarray(train_y, np.int64))
    g = torch.Generator().manual_seed(recipe.seed)
    head = nn.Linear(xt.shape[1], num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        head.reset_parameters()
    opt = torch.optim.SGD(head.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(recipe.milestones), gamma=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            loss = loss_fn(head(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        train_acc = float((head(xt).argmax(1).numpy() == train_y).mean())
        val_acc = float((head(xv).argmax(1).numpy() == val_y).mean())
    return {"linear_top1": val_acc, "linear_train_top1": train_acc, "linear_recipe": recipe.to_dict()}


def hungarian_match(clusters: np.ndarray, labels: np.ndarray, num_clusters: int, num_classes: int) -> np.ndarray:
    """cluster -> class mapping maximising the summed precision |cluster & class| / |cluster| (CompRess's
    alignment score), -1 for clusters left unmatched."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((num_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    precision = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    rows, cols = linear_sum_assignment(precision, maximize=True)
    mapping = np.full(num_clusters, -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def cluster_alignment(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                      k: int | None = None, niter: int = 20, seed: int = 0) -> dict:
    """CompRess cluster alignment (``eval_cluster_alignment.py``): L2 k-means (faiss, 20 iterations) on the
    L2-normalised train features, clusters matched to classes by the Hungarian algorithm on the precision of
    each (cluster, class) pair on the train split, accuracy of that matching on train and val."""
    import faiss

    num_classes = int(max(train_y.max(), val_y.max())) + 1
    k = k or num_classes
    tr, va = l2_normalize(train_x), l2_normalize(val_x)
    km = faiss.Kmeans(tr.shape[1], k, niter=niter, seed=seed, spherical=False, verbose=False)
    km.train(np.ascontiguousarray(tr))
    _, train_c = km.index.search(np.ascontiguousarray(tr), 1)
    _, val_c = km.index.search(np.ascontiguousarray(va), 1)
    mapping = hungarian_match(train_c[:, 0], train_y, k, num_classes)
    return {"cluster_acc": float((mapping[val_c[:, 0]] == val_y).mean()),
            "cluster_train_acc": float((mapping[train_c[:, 0]] == train_y).mean()), "clusters": k}
