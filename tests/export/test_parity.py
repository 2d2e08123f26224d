"""The parity measures and the gate."""
import numpy as np
import pytest

from distill.core.embeddings import neighbour_overlap
from export.parity import compare
from export.tolerances import TOLERANCES


def test_identical_embeddings_pass_with_perfect_scores():
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    r = compare(x, x.copy(), "fp32")
    assert r.passed and r.max_abs == 0 and r.min_cosine == pytest.approx(1.0) and r.neighbour_overlap == 1.0


def test_scaled_embeddings_keep_cosine_but_not_absolute_error():
    x = np.random.default_rng(0).standard_normal((50, 16))
    r = compare(x, 2 * x, "fp32")
    assert r.passed and r.max_abs > 0.5 and r.min_cosine == pytest.approx(1.0)


def test_noise_fails_the_tighter_tolerance_first():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 32))
    noisy = x + 0.05 * rng.standard_normal(x.shape)
    assert not compare(x, noisy, "fp32").passed
    assert "worst image" in compare(x, noisy, "fp32").reason
    assert compare(x, noisy, "int8").min_cosine > TOLERANCES["int8"].min_cosine


def test_neighbour_overlap_detects_a_shuffled_structure():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 8))
    assert neighbour_overlap(x, x) == 1.0
    assert neighbour_overlap(x, rng.permutation(x)) < 0.4


def test_shape_mismatch_and_nan_fail():
    x = np.ones((10, 4))
    assert not compare(x, np.ones((10, 5)), "fp16").passed
    bad = x.copy()
    bad[0, 0] = np.nan
    r = compare(x, bad, "fp16")
    assert not r.passed and "non-finite" in r.reason


def test_int8_tolerates_a_few_bad_images_but_not_a_broad_drift():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 32))
    tail = x.copy()
    tail[:3] = 0.7 * x[:3] + 0.7 * rng.standard_normal((3, 32))  # three images off (cosine ~0.7), the rest exact
    r = compare(x, tail, "int8")
    assert r.passed and r.min_cosine < 0.9 and r.mean_cosine > 0.99
    assert not compare(x, tail, "fp16").passed  # the worst-image gate of the float precisions catches it
    drift = x + 0.45 * rng.standard_normal(x.shape)  # every image a little off: mean cosine ~0.91
    r = compare(x, drift, "int8")
    assert not r.passed and "mean cosine" in r.reason
    collapsed = tail.copy()
    collapsed[0] = -x[0]  # one image's embedding inverted
    assert "worst image" in compare(x, collapsed, "int8").failed


def test_one_gate_logic_names_the_failed_criteria():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 32))
    # fp16-like rounding with one out-of-domain image at cosine ~0.998: rounding, not a collapse, so it passes
    # (the earlier float floor of 0.999 refused it while int8 passed at 0.66: issue 18)
    rounded = x + 1e-3 * rng.standard_normal(x.shape)
    rounded[0] = x[0] + 0.065 * np.linalg.norm(x[0]) / np.sqrt(32) * rng.standard_normal(32)
    r = compare(x, rounded, "fp16")
    assert 0.99 < r.min_cosine < 0.999 and r.passed and r.failed == []
    collapsed = rounded.copy()
    collapsed[1] = rng.standard_normal(32)  # one image mapped to an unrelated embedding
    r = compare(x, collapsed, "fp16")
    assert not r.passed and r.failed[0] == "worst image"


def test_knn_criterion_with_labels():
    rng = np.random.default_rng(4)
    centres = 3 * rng.standard_normal((4, 16))
    labels = np.repeat(np.arange(4), 30)
    x = centres[labels] + rng.standard_normal((120, 16))
    r = compare(x, x.copy(), "int8", labels=labels)
    assert r.knn == r.knn_reference > 0.9 and r.passed
    scrambled = x.copy()
    scrambled[:40] = centres[(labels[:40] + 1) % 4] + rng.standard_normal((40, 16))  # a third of images move class
    r = compare(x, scrambled, "int8", labels=labels)
    assert not r.passed and "knn" in r.failed and r.knn < r.knn_reference - 0.03
    assert compare(x, scrambled, "int8").knn is None  # no labels, no kNN criterion


def test_a_knn_drop_must_exceed_the_budget_and_chance():
    from export.parity import knn_drop_fails

    assert not knn_drop_fails(lost=10, gained=3, n=200, budget=0.03)  # 3.5 points, but 7 < 2 sqrt(13): chance
    assert knn_drop_fails(lost=20, gained=2, n=200, budget=0.03)  # 9 points, 18 > 2 sqrt(22): real
    assert not knn_drop_fails(lost=40, gained=0, n=2000, budget=0.03)  # significant, but 2 points: within budget


def test_the_smallest_batch_is_held_to_the_same_cosines():
    from export.batch import BatchSpec, run_smallest

    x = np.random.default_rng(3).standard_normal((40, 16)).astype(np.float32)
    calls = []

    def runtime(a):  # right batched, wrong one image at a time
        calls.append(len(a))
        return a[:, ::-1].copy() if len(a) == 1 else a.copy()

    smallest = run_smallest(runtime, x, BatchSpec())
    assert calls == [1] * 8 and smallest.shape == (8, 16)
    assert run_smallest(runtime, x, BatchSpec(static=4)) is None  # a static batch has one size
    r = compare(x, x.copy(), "int8", smallest=smallest)
    assert not r.passed and r.failed == ["smallest batch"] and r.smallest_batch_min_cosine < 0.5
    assert compare(x, x.copy(), "fp32", smallest=x[:8].copy()).passed
