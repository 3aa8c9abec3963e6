"""Multi-view fit: exact recovery of a known head from noise-free landmarks of three views (weak
priors), the Jacobian against finite differences, and errors naming the view."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax.camera import frontal_rotation
from digitaltwin_jax.fitting import FitConfig
from digitaltwin_jax.multiview import MultiFitConfig, fit_views
from digitaltwin_jax.multiview.fit import residual_fn
from digitaltwin_jax.synth.scene import euler_to_matrix

K_ID = 20
SIZE = (480, 640)
# Weak priors, stated explicitly: omega_r = 1e-8 scales every prior (expression, focal, rotation,
# identity) to ~1e-8 of the paper's; fixed landmark vertices (no sliding jaw) and unit jaw weights,
# so that noise-free landmarks of the true head are matched exactly by the true parameters.
WEAK = FitConfig(omega_r=1e-8, num_identity=K_ID, sliding_contour=False, jaw_weight=1.0, jaw_tangent_weight=1.0)


@pytest.fixture(scope="module")
def model():
    from digitaltwin_jax import load_head_model

    return load_head_model("low")


def _views(model, fs_per_view, yaws=(0.0, -30.0, 30.0), seed=0):
    """Noise-free landmarks of a known head (numpy pinhole, independent of the fit's code)."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(size=K_ID)
    names = list(model.expression_names)
    neutral = np.asarray(model.vertices, np.float64) + np.tensordot(alpha, np.asarray(model.identity_basis[:K_ID], np.float64), axes=1)
    lms, betas, ts = [], [], []
    for j, y in enumerate(yaws):
        beta = np.zeros(len(names))
        beta[names.index("jawOpen")] = 0.2 + 0.1 * j
        beta[names.index("mouthSmile_L")] = 0.3
        v = neutral + np.tensordot(beta, np.asarray(model.expression_basis, np.float64), axes=1)
        R = np.diag([1.0, -1.0, -1.0]) @ euler_to_matrix(3.0 * j - 2.0, y, 5.0 - 2.0 * j)
        t = np.array([10.0 * j, -5.0, 600.0 + 20.0 * j])
        p = v[np.asarray(model.landmark_indices)] @ R.T + t
        f = fs_per_view[j] * max(SIZE)
        lms.append(f * p[:, :2] / p[:, 2:3] + np.array([SIZE[1] / 2.0, SIZE[0] / 2.0]))
        betas.append(beta)
        ts.append(t)
    return np.array(lms), alpha, neutral, np.array(betas), np.array(ts)


def test_exact_recovery_shared_camera(model):
    lms, alpha, neutral, betas, ts = _views(model, [1.3, 1.3, 1.3])
    cfg = MultiFitConfig(fit=WEAK, num_iterations=15, fit_identity=True, init_single_fit=False)
    r = fit_views(model, lms, SIZE, config=cfg, camera_groups=[0, 0, 0])
    assert r.success
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-4)
    np.testing.assert_allclose(r.focal_scale, 1.3, atol=1e-6)
    np.testing.assert_allclose(r.beta, betas, atol=1e-4)
    np.testing.assert_allclose(r.t, ts, atol=1e-3)
    assert np.abs(r.neutral - neutral).max() < 1e-3  # mm
    assert np.nanmax(r.reprojection_errors) < 1e-3  # px
    assert r.energy[-1] < 1e-4 * r.energy[0]
    # the posed vertices and K reproduce the input landmarks (numpy projection)
    p = np.einsum("vij,vnj->vni", np.eye(3)[None], r.vertices_camera[:, np.asarray(model.landmark_indices)])
    px = np.einsum("vij,vnj->vni", r.intrinsics, p)
    np.testing.assert_allclose(px[..., :2] / px[..., 2:], lms, atol=1e-3)


def test_exact_recovery_free_intrinsics(model):
    lms, alpha, _, _, _ = _views(model, [1.0, 1.6, 2.2], seed=1)
    cfg = MultiFitConfig(fit=WEAK, num_iterations=20, fit_identity=True, init_single_fit=False)
    r = fit_views(model, lms, SIZE, config=cfg)  # every view its own focal scale
    np.testing.assert_allclose(r.focal_scale, [1.0, 1.6, 2.2], rtol=1e-4)
    np.testing.assert_allclose(r.alpha, alpha, atol=1e-3)


def test_jacobian_matches_finite_differences(model):
    rng = np.random.default_rng(3)
    nv, k, m = 2, 4, model.expression_basis.shape[0]
    with jax.enable_x64(True):
        d = {
            "s_base": rng.normal(size=(nv, 68, 3)) * 40.0,
            "s_id": rng.normal(size=(nv, k, 68, 3)),
            "s_ex": rng.normal(size=(nv, m, 68, 3)),
            "lm": rng.uniform(100, 500, size=(nv, 68, 2)),
            "mask": rng.uniform(0.5, 1.0, size=(nv, 68)),
            "frames": np.repeat(np.eye(2)[None, None], 68, 1).repeat(nv, 0),
            "scale": np.array([0.5, 0.7]),
            "focal": np.array([640.0, 512.0]),
            "principal": np.array([[320.0, 240.0], [256.0, 256.0]]),
            "q_ref": np.array([[0.1, 0.99, 0.05, 0.0], [0.0, 0.97, -0.2, 0.1]]),
            "q0": np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.1, 0.0]]),
            "cam": np.array([0, 0]),
            "cam_weight": np.array([2.0]),
            "sigma": np.full(m, 0.05),
        }
        d = {kk: jnp.asarray(v) for kk, v in d.items()}
        x = {"alpha": rng.normal(size=k), "beta": rng.uniform(0, 1, size=(nv, m)), "w": rng.normal(size=(nv, 3)) * 0.1,
             "t": np.array([[5.0, -3.0, 500.0], [-8.0, 2.0, 650.0]]), "log_fs": np.array([0.2])}
        flat, unravel = jax.flatten_util.ravel_pytree({kk: jnp.asarray(v) for kk, v in x.items()})
        w = jnp.asarray([1.0, 2.0, 3.0, 4.0, 1.0])
        f = lambda z: residual_fn(unravel(z), d, w)
        J = np.asarray(jax.jacfwd(f)(flat))
        h = 1e-6
        cols = rng.choice(flat.shape[0], size=40, replace=False)
        for c in cols:
            e = np.zeros(flat.shape[0])
            e[c] = h
            fd = (np.asarray(f(flat + e)) - np.asarray(f(flat - e))) / (2 * h)
            np.testing.assert_allclose(J[:, c], fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_errors_name_the_view(model):
    lms, *_ = _views(model, [1.0, 1.0, 1.0])
    bad = lms.copy()
    bad[1] = np.stack([np.linspace(0, 100, 68), np.linspace(0, 100, 68)], axis=1)  # collinear
    with pytest.raises(ValueError, match="view 1"):
        fit_views(model, bad, SIZE, config=MultiFitConfig(fit=WEAK, init_single_fit=False))
    with pytest.raises(ValueError, match="camera_groups"):
        fit_views(model, lms, SIZE, camera_groups=[0, 1])
    with pytest.raises(ValueError, match=r"\(V, 68, 2\)"):
        fit_views(model, lms[0], SIZE)
