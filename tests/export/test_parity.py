"""The parity measures and the gate."""
import numpy as np
import pytest

from export.parity import compare, neighbour_overlap
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
    assert "min cosine" in compare(x, noisy, "fp32").reason
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
