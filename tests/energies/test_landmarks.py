"""Tests of the landmark term (eq. 1) and the sliding contour."""
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax.energies import landmarks as lmk

ASSET = Path(__file__).resolve().parents[2] / "digitaltwin_jax" / "assets" / "ict_head_low.npz"


def _rot(yaw, pitch=0.0, roll=0.0):
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return np.diag([1.0, -1.0, -1.0]) @ rz @ rx @ ry  # head frame -> OpenCV camera, frontal at 0


def _quat(R):
    rvec = cv2.Rodrigues(R)[0].ravel()
    angle = np.linalg.norm(rvec)
    axis = rvec / angle if angle > 0 else np.zeros(3)
    return np.r_[np.cos(angle / 2), np.sin(angle / 2) * axis]


def test_projection_matches_opencv():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-80, 80, (20, 3))
    R = _rot(25, -10, 5)
    t = np.array([10.0, -5.0, 600.0])
    h, w, fs = 480, 640, 1.2
    K = np.array([[fs * 640, 0, 320], [0, fs * 640, 240], [0, 0, 1.0]])
    ref = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], t, K, None)[0].reshape(-1, 2)
    got = lmk.project_points(pts, _quat(R) * 3.0, t, fs, float(max(h, w)), np.array([w / 2, h / 2]))
    np.testing.assert_allclose(np.asarray(got), ref, atol=2e-3)


def test_residual_values_scale_and_mask():
    rng = np.random.default_rng(1)
    pts = rng.uniform(-60, 60, (68, 3))
    R, t = _rot(0), np.array([0.0, 0.0, 500.0])
    K = np.array([[640.0, 0, 320], [0, 640, 240], [0, 0, 1]])
    px = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], t, K, None)[0].reshape(-1, 2)
    obs = px + rng.normal(0, 2.0, px.shape)
    obs[5] = np.nan
    mask = np.ones(68)
    mask[:17] = 0.25
    mask[5] = 0.0
    r = np.asarray(lmk.landmark_residual(pts, obs, mask, 100 / 80.0, _quat(R), t, 1.0, 640.0, np.array([320.0, 240])))
    assert np.all(np.isfinite(r))
    expect = (px - np.nan_to_num(obs)) * (100 / 80.0) * np.sqrt(mask)[:, None]
    expect[5] = 0.0
    np.testing.assert_allclose(r.reshape(68, 2), expect, rtol=1e-4, atol=1e-3)


def test_residual_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        pts = jnp.asarray(rng.uniform(-60, 60, (6, 3)))
        obs = jnp.asarray(rng.uniform(200, 400, (6, 2)))
        mask = jnp.asarray(rng.uniform(0.2, 1.0, 6))
        q = jnp.asarray(_quat(_rot(20, 5, -3)))
        t = jnp.asarray([3.0, -4.0, 550.0])

        def f(p, q, t, fs):
            return lmk.landmark_residual(p, obs, mask, 1.3, q, t, fs, 640.0, jnp.asarray([320.0, 240.0]))

        check_grads(f, (pts, q, t, jnp.asarray(1.1)), order=1, modes=("fwd",), atol=1e-5, rtol=1e-5)


def test_eye_distance():
    lm = np.zeros((68, 2))
    lm[36] = [100, 200]
    lm[45] = [160, 120]
    assert lmk.eye_distance(lm) == pytest.approx(100.0)
    lm[45] = np.nan
    assert np.isnan(lmk.eye_distance(lm))


def test_sample_points_barycentric():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]])
    idx = np.array([[1, 2, 3], [0, 0, 0]])
    w = np.array([[0.2, 0.3, 0.5], [1.0, 0, 0]])
    np.testing.assert_allclose(np.asarray(lmk.sample_points(v, idx, w)), [[0.2, 0.6, 1.5], [0, 0, 0]], atol=1e-6)


@pytest.fixture(scope="module")
def low_model():
    if not ASSET.exists():
        pytest.skip("ict_head_low.npz not built")
    from digitaltwin_jax.model.head_model import load_head_model

    return load_head_model("low")


@pytest.fixture(scope="module")
def lines(low_model):
    m = low_model
    return lmk.contour_lines(m.vertices, m.faces, m.landmark_indices, m.contour_candidates, m.outer_surface_mask)


def _normals(v, f):
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_contour_lines_are_horizontal_sections(low_model, lines):
    m = low_model
    v = m.vertices.astype(np.float64)
    pts = np.asarray(lmk.sample_points(v, lines.indices, lines.weights))
    for j in list(range(8)) + list(range(9, 17)):
        y0 = v[m.landmark_indices[j], 1]
        np.testing.assert_allclose(pts[j, :, 1], y0, atol=1e-3)  # on the plane y = y_landmark
        side = -1 if j < 8 else 1
        assert np.all(side * pts[j, :, 0] > 0)  # on the landmark's side
        assert np.all(np.diff(side * pts[j, :, 0]) <= 1e-6)  # ordered outside -> inside
    np.testing.assert_array_equal(lines.indices[8], m.landmark_indices[8])


@pytest.mark.parametrize("yaw", [-40.0, 40.0])
def test_sliding_contour_picks_silhouette(low_model, lines, yaw):
    m = low_model
    v = m.vertices.astype(np.float64)
    R = _rot(yaw)
    t = np.array([0.0, 0.0, 700.0])
    f, c = 800.0, np.array([400.0, 400.0])
    pts = np.asarray(lmk.sample_points(v, lines.indices, lines.weights))
    sel = np.asarray(lmk.select_contour(pts, _quat(R), t, 1.0, f, c))
    j17 = np.arange(17)
    chosen = pts[j17, sel]
    nrm = _normals(v, m.faces)
    n = np.sum(nrm[lines.indices[j17, sel]] * lines.weights[j17, sel][..., None], axis=1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    pc = chosen @ R.T + t
    cos = np.sum((n @ R.T) * pc / np.linalg.norm(pc, axis=1, keepdims=True), axis=1)
    # reference silhouette: outline of the rasterised face (outer surface) in the image
    vc = v @ R.T + t
    uv = f * vc[:, :2] / vc[:, 2:3] + c
    mask = np.zeros((800, 800), np.uint8)
    keep = m.outer_surface_mask[m.faces].all(axis=1) & m.face_mask[m.faces].any(axis=1)
    for tri in m.faces[keep]:
        cv2.fillConvexPoly(mask, np.round(uv[tri] * 4).astype(np.int32), 1, shift=2)
    dist_out = cv2.distanceTransform(mask, cv2.DIST_L2, 5)  # distance to the nearest background pixel
    pix = chosen @ R.T + t
    pix = f * pix[:, :2] / pix[:, 2:3] + c
    far = range(9, 17) if yaw > 0 else range(0, 8)  # the side turned away from the camera
    near = range(0, 8) if yaw > 0 else range(9, 17)
    for j in far:
        assert abs(cos[j]) < 0.3, (j, cos[j])  # surface normal perpendicular to the view ray
        x, y = np.round(pix[j]).astype(int)
        assert dist_out[y, x] <= 3.0, (j, dist_out[y, x])  # on the image outline of the face
    upper_far = range(11, 17) if yaw > 0 else range(0, 6)
    assert all(sel[j] > 0 for j in upper_far)  # cheek points moved inward from the frontal outline
    for j in near:
        assert sel[j] == 0 or cos[j] < 0.0  # the near side keeps the frontal outline, facing the camera


def test_select_contour_frontal_is_symmetric(low_model, lines):
    v = low_model.vertices.astype(np.float64)
    pts = np.asarray(lmk.sample_points(v, lines.indices, lines.weights))
    sel = np.asarray(lmk.select_contour(pts, _quat(_rot(0.0)), np.array([0, 0, 700.0]), 1.0, 800.0, np.array([400.0, 400])))
    left = pts[np.arange(9, 17), sel[9:]]
    right = pts[np.arange(7, -1, -1), sel[7::-1]]
    np.testing.assert_allclose(left[:, 0], -right[:, 0], atol=2.0)  # mirror images within 2 mm


def test_select_contour_hysteresis_keeps_previous():
    # two candidates 0.4 px apart along the outward axis: with 1 px hysteresis the old one stays
    pts = np.zeros((17, 2, 3))
    pts[:, 0, 0] = np.where(np.arange(17) < 8, -50.0, 50.0)
    pts[:, 1, 0] = pts[:, 0, 0] * 1.0005
    pts[..., 2] = 0.0
    q = np.array([0.0, 1.0, 0.0, 0.0])
    t = np.array([0.0, 0.0, 500.0])
    best = np.asarray(lmk.select_contour(pts, q, t, 1.0, 500.0, np.zeros(2)))
    assert np.all(best[np.arange(17) != 8] == 1)
    kept = np.asarray(lmk.select_contour(pts, q, t, 1.0, 500.0, np.zeros(2), np.zeros(17, int), 1.0))
    assert np.all(kept == 0)
