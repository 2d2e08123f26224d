"""Linear probe and cluster alignment on synthetic data with known answers; Hungarian matching."""
import numpy as np
import pytest

from distill.protocols import LinearRecipe, cluster_alignment, hungarian_match, linear_probe


def _blobs(n_per_class=60, classes=4, dim=16, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[:classes] * 3 + 1  # well separated directions, all-positive like post-ReLU features
    x = np.concatenate([c + spread * rng.standard_normal((n_per_class, dim)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per_class)
    return x, y


def test_linear_probe_separates_separable_classes():
    x, y = _blobs(n_per_class=500)  # the default recipe: 40 epochs of 8 steps
    xv, yv = _blobs(seed=1, n_per_class=20)
    r = linear_probe(x, y, xv, yv)
    assert r["linear_top1"] == 1.0 and r["linear_train_top1"] == 1.0 and r["linear_recipe"]["epochs"] == 40


def test_linear_probe_is_at_chance_on_random_labels():
    x, _ = _blobs()
    rng = np.random.default_rng(3)
    y, yv = rng.integers(0, 4, len(x)), rng.integers(0, 4, 200)
    r = linear_probe(x, y, rng.standard_normal((200, 16)).astype(np.float32), yv, recipe=LinearRecipe(epochs=5))
    assert r["linear_top1"] < 0.4  # chance is 0.25


def test_hungarian_recovers_a_permutation():
    labels = np.repeat(np.arange(5), 10)
    perm = np.array([3, 0, 4, 1, 2])
    clusters = perm[labels]  # cluster ids are a relabelling of the classes
    mapping = hungarian_match(clusters, labels, 5, 5)
    assert (mapping[perm] == np.arange(5)).all()
    assert (mapping[clusters] == labels).all()


def test_cluster_alignment_finds_the_blobs():
    x, y = _blobs()
    xv, yv = _blobs(seed=1, n_per_class=20)
    r = cluster_alignment(x, y, xv, yv)
    assert r["cluster_acc"] == pytest.approx(1.0) and r["cluster_train_acc"] == pytest.approx(1.0) and r["clusters"] == 4


def test_cluster_alignment_with_more_clusters_than_classes_leaves_some_unmatched():
    x, y = _blobs(classes=3)
    r = cluster_alignment(x, y, x, y, k=6)
    assert 0.3 < r["cluster_acc"] <= 1.0 and r["clusters"] == 6
