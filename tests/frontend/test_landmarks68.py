import numpy as np
import pytest

from digitaltwin_jax.frontend.landmarks68 import (
    FLIP_PERMUTATION,
    flip_landmarks,
    normalised_mean_error,
    outer_eye_distance,
)

# Mirror partners written out by hand from the iBUG 68-point chart (0-based), independent of the code.
PAIRS = (
    [(i, 16 - i) for i in range(8)]  # jaw
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]  # brows
    + [(31, 35), (32, 34)]  # nostrils
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    + [(60, 64), (61, 63), (65, 67)]  # inner lips
)
SELF = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_flip_permutation_matches_hand_written_pairs():
    expected = np.arange(68)
    for a, b in PAIRS:
        expected[a], expected[b] = b, a
    assert sorted(SELF + [i for p in PAIRS for i in p]) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION, expected)
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))


def test_flip_landmarks_of_mirror_symmetric_shape_is_identity():
    rng = np.random.default_rng(0)
    W = 100.0
    q = np.zeros((68, 2))
    for a, b in PAIRS:  # build a face symmetric about x = W / 2
        x, y = rng.uniform(0, 50), rng.uniform(0, 100)
        q[a] = (x, y)
        q[b] = (W - x, y)
    for i in SELF:
        q[i] = (W / 2, rng.uniform(0, 100))
    np.testing.assert_allclose(flip_landmarks(q, W), q, atol=1e-12)
    p = rng.uniform(0, 100, (3, 68, 2))
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(p, W), W), p, atol=1e-12)


def test_normalised_mean_error_closed_form():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 100, (68, 2))
    ref[36], ref[45] = (10.0, 50.0), (70.0, 50.0)  # W_eye = 60
    assert outer_eye_distance(ref) == pytest.approx(60.0)
    assert normalised_mean_error(ref + np.array([3.0, 4.0]), ref) == pytest.approx(100 * 5 / 60)
    pred = ref.copy()
    pred[48] += (6.0, 8.0)  # one point off by 10 px
    assert normalised_mean_error(pred, ref) == pytest.approx(100 * 10 / 68 / 60)
    assert normalised_mean_error(pred, ref, indices=[48, 54]) == pytest.approx(100 * 5 / 60)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="68, 2"):
        outer_eye_distance(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        flip_landmarks(np.full((68, 2), np.nan), 10)
