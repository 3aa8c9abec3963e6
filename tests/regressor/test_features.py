"""Landmark geometry features: similarity invariance against closed forms and a brute-force search."""
import numpy as np
import pytest

from digitaltwin_jax.regressor.features import landmark_geometry, reference_landmarks, with_landmarks


def _rot(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _shape(rng):
    return rng.normal(size=(68, 2)) * np.array([60.0, 80.0]) + 300.0


def test_a_similarity_copy_of_the_reference_maps_onto_it():
    rng = np.random.default_rng(0)
    ref = _shape(rng)
    refn = (ref - ref.mean(0)) / np.linalg.norm(ref - ref.mean(0))
    lms = np.stack([3.7 * ref @ _rot(0.9).T + [40.0, -12.0], 0.2 * ref @ _rot(-2.5).T])
    f = landmark_geometry(lms, ref)
    assert f.shape == (2, 136) and f.dtype == np.float32
    np.testing.assert_allclose(f.reshape(2, 68, 2), np.stack([refn, refn]), atol=1e-6)


def test_matches_a_brute_force_rotation_search_and_excludes_reflections():
    rng = np.random.default_rng(1)
    ref = _shape(rng)
    refn = (ref - ref.mean(0)) / np.linalg.norm(ref - ref.mean(0))
    for x in (_shape(rng), ref * np.array([-1.0, 1.0])):  # a random shape and a mirror image
        xc = x - x.mean(0)
        angles = np.linspace(-np.pi, np.pi, 20001)
        best = None
        for t in angles:  # for a fixed rotation the best scale is closed-form
            y = xc @ _rot(t).T
            s = np.sum(y * refn) / np.sum(y * y)
            err = np.sum((s * y - refn) ** 2)
            if best is None or err < best[0]:
                best = (err, s * y)
        f = landmark_geometry(x[None], ref)[0].reshape(68, 2)
        assert np.sum((f - refn) ** 2) <= best[0] + 1e-7
        np.testing.assert_allclose(f, best[1], atol=2e-3)


def test_nan_rows_reference_and_concatenation():
    rng = np.random.default_rng(2)
    lms = np.stack([_shape(rng) for _ in range(5)])
    lms[1, 3, 0] = np.nan
    ref = reference_landmarks(lms)
    assert abs(np.linalg.norm(ref) - 1.0) < 1e-12 and np.allclose(ref.mean(0), 0.0)
    f = with_landmarks(np.ones((5, 4)), lms, ref)
    assert f.shape == (5, 140) and np.all(np.isnan(f[1, 4:])) and np.all(np.isfinite(f[[0, 2, 3, 4]]))
    with pytest.raises(ValueError, match="68, 2"):
        landmark_geometry(np.zeros((2, 5, 2)), ref)
    with pytest.raises(ValueError, match="no landmark row"):
        reference_landmarks(np.full((2, 68, 2), np.nan))
