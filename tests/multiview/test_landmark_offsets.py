"""Detector landmark offsets: the estimator recovers known offsets from noise-free projections
(numpy pinhole written here), and fit_views with the offsets recovers a known head whose
"detected" points are displaced from the model's landmark vertices."""
import numpy as np
import pytest

from digitaltwin_jax.fitting import FitConfig
from digitaltwin_jax.multiview import MultiFitConfig, fit_views
from digitaltwin_jax.multiview.landmark_offsets import estimate_landmark_offsets
from digitaltwin_jax.synth.scene import euler_to_matrix

K_ID = 20
SIZE = (480, 640)
WEAK = FitConfig(omega_r=1e-8, num_identity=K_ID, sliding_contour=False, jaw_weight=1.0, jaw_tangent_weight=1.0)



def _camera(j, yaw):
    R = np.diag([1.0, -1.0, -1.0]) @ euler_to_matrix(3.0 * j - 2.0, yaw, 5.0 - 2.0 * j)
    t = np.array([10.0 * j, -5.0, 600.0 + 20.0 * j])
    f = 1.3 * max(SIZE)
    K = np.array([[f, 0.0, SIZE[1] / 2.0], [0.0, f, SIZE[0] / 2.0], [0.0, 0.0, 1.0]])
    return R, t, K


def _pix(p, R, t, K):
    h = (p @ R.T + t) @ K.T
    return h[:, :2] / h[:, 2:]


def test_estimator_recovers_known_offsets():
    rng = np.random.default_rng(3)
    n, nl = 12, 68
    delta = rng.normal(scale=3.0, size=(nl, 3))
    pts = rng.normal(scale=40.0, size=(n, nl, 3))
    cams = [_camera(i % 5, (-30.0, -10.0, 0.0, 15.0, 30.0)[i % 5]) for i in range(n)]
    R, t, K = (np.array(c) for c in zip(*cams))
    det = np.stack([_pix(pts[i] + delta, R[i], t[i], K[i]) for i in range(n)])
    det[:, 50] = np.nan  # never seen
    det[1:, 51] = np.nan  # seen once: not estimable
    det[:4, 52] = np.nan  # seen by 8 photos
    off, counts, sigma = estimate_landmark_offsets(pts, R, t, K, det, ridge=0.0)
    assert counts[50] == 0 and counts[51] == 1 and counts[52] == 8 and counts[0] == n
    keep = np.setdiff1d(np.arange(nl), [50, 51])
    np.testing.assert_allclose(off[keep], delta[keep], atol=1e-6)
    assert np.all(off[[50, 51]] == 0.0) and np.all(np.isnan(sigma[[50, 51]]))
    assert np.nanmax(sigma) < 1e-6
    # with noise of known size the remaining RMS is that noise (in % of the eye distance, per coordinate)
    noisy = det + rng.normal(scale=0.5, size=det.shape)
    _, _, s2 = estimate_landmark_offsets(pts, R, t, K, noisy, ridge=0.0)
    eye = np.linalg.norm(det[:, 36] - det[:, 45], axis=1)
    assert 0.3 < np.nanmedian(s2) / np.mean(0.5 * 100.0 / eye) < 1.2  # n - 3 dof of 2n: a bit below 1


def _views_with_offsets(model, delta, yaws=(0.0, -30.0, 30.0), seed=0):
    rng = np.random.default_rng(seed)
    alpha = rng.normal(size=K_ID)
    neutral = np.asarray(model.vertices, np.float64) + np.tensordot(alpha, np.asarray(model.identity_basis[:K_ID], np.float64), axes=1)
    li = np.asarray(model.landmark_indices)
    lms = np.stack([_pix(neutral[li] + delta, *_camera(j, y)) for j, y in enumerate(yaws)])
    return lms, alpha


def test_fit_with_offsets_recovers_the_head(model):
    rng = np.random.default_rng(5)
    delta = rng.normal(scale=2.0, size=(68, 3))
    lms, alpha = _views_with_offsets(model, delta)
    cfg = MultiFitConfig(fit=WEAK, num_iterations=15, fit_identity=True, init_single_fit=False, fit_corrective=False)
    r = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0], landmark_offsets=delta)
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-3)
    assert np.nanmax(r.reprojection_errors) < 1e-3  # the reported projections include the offsets
    plain = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0])  # the biased fit
    assert np.abs(plain.alpha - alpha).max() > 0.1


def test_landmark_weights_silence_an_outlier(model):
    lms, alpha = _views_with_offsets(model, np.zeros((68, 3)), seed=2)
    lms[:, 30] += 25.0  # the nose tip displaced in every view
    cfg = MultiFitConfig(fit=WEAK, num_iterations=15, fit_identity=True, init_single_fit=False, fit_corrective=False)
    w = np.ones(68)
    w[30] = 1e-12
    r = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0], landmark_weights=w)
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-3)
    assert np.abs(fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0]).alpha - alpha).max() > 0.1
    with pytest.raises(ValueError, match="landmark_weights"):
        fit_views(model, lms, SIZE, config=cfg, landmark_weights=np.zeros(68))
    with pytest.raises(ValueError, match="landmark_offsets"):
        fit_views(model, lms, SIZE, config=cfg, landmark_offsets=np.zeros((67, 3)))
