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


def test_probe_standardisation_keeps_a_constant_feature_near_zero():
    """CompRess standardises with sqrt(var + 1e-5): a feature that never changes on the train split must not be
    blown up (std + 1e-6 scaled a 1e-4 wobble on a val image by 1e6)."""
    x, y = _blobs(n_per_class=100)
    x[:, -1] = 0.0  # a dead feature on the train split
    xv, yv = _blobs(seed=1, n_per_class=20)
    xv[:, -1] = 1e-3  # barely alive on the val images
    r = linear_probe(x, y, xv, yv, recipe=LinearRecipe(epochs=10))
    assert r["linear_top1"] == 1.0
    assert r["linear_recipe"]["weight_decay"] == 1e-4


def test_hungarian_matches_on_precision_not_counts():
    """A big impure cluster and a small pure one: precision prefers giving class 0 to the pure cluster."""
    clusters = np.array([0] * 60 + [1] * 10)
    labels = np.array([0] * 35 + [1] * 25 + [0] * 10)  # cluster 0: 35 of class 0, 25 of class 1; cluster 1: pure 0
    mapping = hungarian_match(clusters, labels, 2, 2)
    assert mapping.tolist() == [1, 0]  # counts alone would give [0, 1] (35 + 0 > 25 + 10)
