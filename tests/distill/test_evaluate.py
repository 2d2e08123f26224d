"""Weighted kNN and 1-NN."""
import math

import numpy as np
import pytest

from distill.core.embeddings import FolderEmbeddings, embed_folder, knn_protocols, topk_accuracy, weighted_knn
from distill.core.errors import DataError
from distill.core.images import scan_folder
from distill.core.preprocess import Preprocess
from distill.evaluate import align_labels


def test_weighted_knn_votes_by_exp_similarity():
    sims = np.array([[0.9, 0.8, 0.1]])
    labels = np.array([[0, 1, 1]])
    scores = weighted_knn(sims, labels, num_classes=2, t=0.5)
    assert scores[0, 0] == pytest.approx(math.exp(0.9 / 0.5))
    assert scores[0, 1] == pytest.approx(math.exp(0.8 / 0.5) + math.exp(0.1 / 0.5))


def test_topk_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    targets = np.array([2, 0])
    assert topk_accuracy(scores, targets, 1) == 0.5
    assert topk_accuracy(scores, targets, 2) == 1.0
    assert topk_accuracy(scores, targets, 5) == 1.0  # more than the number of classes


def _clusters(n_per, centers, noise, seed):
    rng = np.random.default_rng(seed)
    feats = np.concatenate([c + noise * rng.standard_normal((n_per, len(c))) for c in centers]).astype(np.float32)
    labels = np.repeat(np.arange(len(centers)), n_per)
    return FolderEmbeddings(feats, labels, np.arange(len(labels)), 0)


def test_knn_is_perfect_on_separated_clusters_and_chance_on_noise():
    centers = np.eye(4) * 10
    res = knn_protocols(_clusters(30, centers, 0.1, 0), _clusters(10, centers, 0.1, 1))
    assert res == {"knn_top1": 1.0, "knn_top5": 1.0, "nn_top1": 1.0}
    rng = np.random.default_rng(0)
    bank = FolderEmbeddings(rng.standard_normal((400, 16)).astype(np.float32), rng.integers(0, 4, 400), np.arange(400), 0)
    queries = FolderEmbeddings(rng.standard_normal((400, 16)).astype(np.float32), rng.integers(0, 4, 400), np.arange(400), 0)
    assert 0.1 < knn_protocols(bank, queries)["knn_top1"] < 0.4


def test_val_labels_follow_the_train_class_names(synthetic_folder, tmp_path):
    train = scan_folder(synthetic_folder)
    (tmp_path / "val" / "red").mkdir(parents=True)
    (synthetic_folder / "red" / "img0.png").rename(tmp_path / "val" / "red" / "a.png")
    val = align_labels(train, scan_folder(tmp_path / "val"))
    assert val.classes == train.classes and val.labels.tolist() == [train.classes.index("red")]
    (tmp_path / "val" / "green").mkdir()
    (tmp_path / "val" / "red" / "a.png").rename(tmp_path / "val" / "green" / "a.png")
    with pytest.raises(DataError, match="classes that --train lacks"):
        align_labels(train, scan_folder(tmp_path / "val"))


class MeanColour:
    """A transparent embedder: the mean RGB of the image."""

    preprocess = Preprocess(input_size=8, mean=(0, 0, 0), std=(1, 1, 1))
    embedding_dim = 3

    def __call__(self, x):
        return x.mean(axis=(2, 3))


def test_embed_folder_uses_the_embedders_preprocessing(synthetic_folder):
    folder = scan_folder(synthetic_folder)
    emb = embed_folder(MeanColour(), folder, batch_size=5, workers=0)
    assert emb.features.shape == (12, 3) and emb.labels.tolist() == folder.labels.tolist()
    blue, red = emb.features[:6].mean(0), emb.features[6:].mean(0)
    assert blue[2] > 0.6 and red[0] > 0.6
    res = knn_protocols(emb, emb, k=3)
    assert res["knn_top1"] == 1.0
