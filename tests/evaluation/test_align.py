"""Umeyama and ICP (digitaltwin_jax/evaluation/align.py)."""
import numpy as np
import pytest

from digitaltwin_jax.evaluation.align import ICPConfig, SimilarityTransform, icp, umeyama
from digitaltwin_jax.evaluation.distance import point_to_mesh_distance


def _rotation_angle(r):
    return float(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))


def test_umeyama_closed_form_case():
    # target = 2 * Rz(90 deg) * source + (1, 2, 3), hand-written
    src = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    rz = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    dst = np.array([[1.0, 2, 3], [1, 4, 3], [-1, 2, 3], [1, 2, 5]])
    t = umeyama(src, dst)
    assert t.scale == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_allclose(t.rotation, rz, atol=1e-12)
    np.testing.assert_allclose(t.translation, [1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(t.apply(src), dst, atol=1e-12)


def test_umeyama_recovers_random_similarity_and_rigid(em):
    rng = np.random.default_rng(0)
    src = rng.normal(size=(7, 3)) * 30
    r = em.random_rotation(rng)
    dst = 1.3 * src @ r.T + np.array([5.0, -2.0, 40.0])
    t = umeyama(src, dst)
    assert t.scale == pytest.approx(1.3, rel=1e-12)
    np.testing.assert_allclose(t.rotation, r, atol=1e-12)
    rigid = umeyama(src, src @ r.T + 1.0, with_scale=False)
    assert rigid.scale == 1.0
    np.testing.assert_allclose(rigid.rotation, r, atol=1e-12)


def test_umeyama_weights_and_no_reflection():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    dst = src * np.array([1.0, 1.0, -1.0])  # a mirror image: best proper rotation, not a reflection
    t = umeyama(src, dst)
    assert np.linalg.det(t.rotation) == pytest.approx(1.0)
    # zero weights exclude outliers exactly
    dst2 = 2.0 * src + 3.0
    dst2[:3] += 50.0
    w = np.ones(10)
    w[:3] = 0.0
    t2 = umeyama(src, dst2, weights=w)
    assert t2.scale == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(t2.translation, [3, 3, 3], atol=1e-10)


def test_umeyama_bad_inputs():
    with pytest.raises(ValueError, match="collinear"):
        umeyama(np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]), np.random.default_rng(0).normal(size=(4, 3)))
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(np.eye(3)[:2], np.eye(3)[:2])
    with pytest.raises(ValueError, match="same shape"):
        umeyama(np.eye(3), np.eye(4)[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        umeyama(np.array([[np.nan, 0, 0], [1, 0, 0], [0, 1, 0]]), np.eye(3))
    with pytest.raises(ValueError, match="non-negative"):
        umeyama(np.eye(3), np.eye(3), weights=[1.0, -1.0, 1.0])


def test_similarity_transform_algebra(em):
    rng = np.random.default_rng(2)
    a = SimilarityTransform(1.5, em.random_rotation(rng), rng.normal(size=3))
    b = SimilarityTransform(0.7, em.random_rotation(rng), rng.normal(size=3))
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(a.compose(b).apply(x), a.apply(b.apply(x)), atol=1e-12)
    np.testing.assert_allclose(a.inverse().apply(a.apply(x)), x, atol=1e-12)
    m = a.matrix()
    np.testing.assert_allclose((np.c_[x, np.ones(5)] @ m.T)[:, :3], a.apply(x), atol=1e-12)


@pytest.mark.parametrize(
    "method,rms_tol,ang_tol,scale_tol,t_tol",
    # point-to-point converges linearly (tangential errors shrink slowly on a smooth surface): after
    # 100 steps it is within ~1 degree / 0.3 mm rms only, where point-to-plane is exact in < 30 steps
    [("point_to_plane", 1e-4, 1e-5, 1e-5, 1e-3), ("point_to_point", 0.3, 0.03, 3e-3, 0.2)],
)
def test_icp_recovers_known_similarity(method, rms_tol, ang_tol, scale_tol, t_tol, em):
    v, f = em.bumpy_sphere(3, 90.0)
    rng = np.random.default_rng(4)
    true = SimilarityTransform(1.04, em.random_rotation(rng, 6.0), np.array([3.0, -2.0, 1.5]))
    target_v = true.apply(v)
    # source: the original vertices, so the exact transform makes every residual zero
    cfg = ICPConfig(method=method, with_scale=True, max_iterations=100, tolerance=1e-12, trim_fraction=0.0)
    res = icp(v, target_v, f, config=cfg)
    start_rms = np.sqrt(np.mean(point_to_mesh_distance(v, target_v, f) ** 2))
    assert start_rms > 3.0
    assert res.rms < rms_tol
    assert res.transform.scale == pytest.approx(1.04, abs=scale_tol)
    assert _rotation_angle(res.transform.rotation @ true.rotation.T) < ang_tol
    np.testing.assert_allclose(res.transform.translation, true.translation, atol=t_tol)
    if method == "point_to_plane":
        assert res.converged and res.iterations < 30


def test_icp_rigid_with_init_and_trimming(em):
    v, f = em.bumpy_sphere(3, 90.0)
    rng = np.random.default_rng(5)
    true = SimilarityTransform(1.0, em.random_rotation(rng, 15.0), np.array([10.0, 0.0, -5.0]))
    # partial source (one side of the surface) plus outliers that trimming must ignore
    src = v[v[:, 2] > 0]
    outliers = rng.normal(size=(len(src) // 20, 3)) * 5 + 150.0
    init = SimilarityTransform(1.0, true.rotation, true.translation + 2.0)  # a rough landmark fit
    cfg = ICPConfig(with_scale=False, trim_fraction=0.1, tolerance=1e-12, max_iterations=100)
    res = icp(np.concatenate([src, outliers]), true.apply(v), f, config=cfg, init=init)
    assert res.transform.scale == 1.0
    assert _rotation_angle(res.transform.rotation @ true.rotation.T) < 1e-4
    np.testing.assert_allclose(res.transform.translation, true.translation, atol=1e-2)
    assert 0.85 < res.inlier_fraction <= 0.91


def test_icp_config_validation_and_failure_reporting(em):
    with pytest.raises(ValueError, match="method"):
        ICPConfig(method="plane")
    with pytest.raises(ValueError, match="trim_fraction"):
        ICPConfig(trim_fraction=1.0)
    with pytest.raises(ValueError, match="max_correspondence_distance"):
        ICPConfig(max_correspondence_distance=0.0)
    v, f = em.icosphere(2, 10.0)
    with pytest.raises(ValueError, match="correspondences left"):
        icp(v + 100.0, v, f, config=ICPConfig(max_correspondence_distance=1.0))
    # one iteration cannot converge on a rotated sphere-like surface: reported, not hidden
    b, fb = em.bumpy_sphere(2, 50.0)
    rng = np.random.default_rng(0)
    moved = SimilarityTransform(1.0, em.random_rotation(rng, 10.0), np.array([4.0, 0, 0])).apply(b)
    res = icp(b, moved, fb, config=ICPConfig(max_iterations=1, trim_fraction=0.0))
    assert not res.converged and res.iterations == 1
