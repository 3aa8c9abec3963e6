"""shape_prior.evidence: the closed-form evidence against a dense Gaussian (scipy), the linearisation
against finite differences of the profiled landmark energy, and gradients (check_grads)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.optimize import least_squares
from scipy.stats import multivariate_normal

from digitaltwin_jax.shape_prior.evidence import INNER, linearise, log_evidence, log_evidence_fixed


def _linear_problem(rng, n=12, k=3):
    J = rng.normal(size=(n, k))
    r0 = rng.normal(size=n)
    return J, r0


def _dense_logpdf(J, r0, mu, sigma2, kappa2):
    # residual r = r0 + J alpha + e, e ~ N(0, kappa2 I), alpha ~ N(mu, sigma2 I); "data" = -r0 at r = 0:
    # p(r = 0) = N(0; r0 + J mu, kappa2 I + sigma2 J J^T)
    cov = kappa2 * np.eye(J.shape[0]) + sigma2 * J @ J.T
    return multivariate_normal(mean=r0 + J @ mu, cov=cov).logpdf(np.zeros(J.shape[0]))


def test_log_evidence_matches_dense_gaussian_up_to_a_constant():
    rng = np.random.default_rng(0)
    J, r0 = _linear_problem(rng)
    P, b, q0, n = J.T @ J, -J.T @ r0, r0 @ r0, J.shape[0]
    settings = [(rng.normal(size=3), s2, k2) for s2, k2 in ((0.5, 1.0), (2.0, 0.3), (0.1, 3.0), (1.0, 1.0))]
    with jax.enable_x64(True):
        ours = [float(log_evidence(P, b, q0, n, jnp.asarray(mu), np.log(s2), np.log(k2))) for mu, s2, k2 in settings]
    ref = [_dense_logpdf(J, r0, mu, s2, k2) for mu, s2, k2 in settings]
    # the dropped constant is -n/2 log(2 pi)
    np.testing.assert_allclose(np.array(ours) - n / 2 * np.log(2 * np.pi), ref, rtol=1e-9, atol=1e-9)


def test_fixed_identity_is_the_sigma_to_zero_limit():
    rng = np.random.default_rng(1)
    J, r0 = _linear_problem(rng)
    P, b, q0, n = J.T @ J, -J.T @ r0, r0 @ r0, J.shape[0]
    mu = rng.normal(size=3)
    with jax.enable_x64(True):
        lim = float(log_evidence_fixed(P, b, q0, n, jnp.asarray(mu), np.log(0.7)))
        near = float(log_evidence(P, b, q0, n, jnp.asarray(mu), np.log(1e-10), np.log(0.7)))
    # direct: Gaussian density of r0 + J mu with covariance 0.7 I (constant dropped)
    direct = multivariate_normal(mean=r0 + J @ mu, cov=0.7 * np.eye(n)).logpdf(np.zeros(n)) + n / 2 * np.log(2 * np.pi)
    assert lim == pytest.approx(direct, rel=1e-10)
    assert near == pytest.approx(lim, abs=1e-6)


def test_log_evidence_gradients():
    rng = np.random.default_rng(2)
    J, r0 = _linear_problem(rng)
    P, b, q0 = J.T @ J, -J.T @ r0, r0 @ r0
    with jax.enable_x64(True):
        f = lambda mu, ls2, lk2: log_evidence(P, b, q0, 12.0, mu, ls2, lk2)  # noqa: E731
        check_grads(f, (jnp.asarray(rng.normal(size=3)), 0.3, -0.2), order=1, modes=("fwd", "rev"))
        g = jax.jit(jax.vmap(f, in_axes=(0, None, None)))(jnp.asarray(rng.normal(size=(4, 3))), 0.3, -0.2)
        assert g.shape == (4,) and np.all(np.isfinite(g))


def _photo(model, rng, alpha_true):
    """Landmarks of the model with identity ``alpha_true`` seen by a known camera (no noise)."""
    from digitaltwin_jax.geometry.rotations import axis_angle_to_matrix

    R = np.asarray(axis_angle_to_matrix(np.array([0.05, 0.2, 0.02])), np.float64)
    t = np.array([3.0, -10.0, 600.0])
    f, size = 1100.0, (800, 600)
    k = alpha_true.shape[0]
    v = model.vertices.astype(np.float64) + np.tensordot(alpha_true, model.identity_basis[:k].astype(np.float64), 1)
    p = v[model.landmark_indices] @ R.T + t
    lm = f * p[:, :2] / p[:, 2:] + np.array([size[1] / 2, size[0] / 2])
    idx = np.repeat(np.asarray(model.landmark_indices)[:, None], 3, 1)
    w = np.tile([1.0, 0.0, 0.0], (68, 1))
    return lm, size, R, t, f, idx, w


def test_linearise_matches_finite_differences_of_the_profiled_energy():
    """P and b are the Hessian and minus the gradient at alpha = 0 of the landmark energy minimised
    over the camera (rotation, translation, focal) -- computed here by scipy on the projection
    written out in numpy, with expressions left out (beta_precision huge)."""
    from digitaltwin_jax.model.head_model import load_head_model

    model = load_head_model("low")
    rng = np.random.default_rng(3)
    k = 3
    lm, size, R, t, f, idx, w = _photo(model, rng, np.array([0.8, -0.5, 0.3]))
    ev = linearise(model, lm, size, R, t, f, sample_indices=idx, sample_weights=w, beta_precision=1e12,
                   num_identity=k)
    from scipy.spatial.transform import Rotation

    X0 = model.vertices.astype(np.float64)[model.landmark_indices[INNER]]
    B = model.identity_basis[:k].astype(np.float64)[:, model.landmark_indices[INNER]]
    scale = 100.0 / np.linalg.norm(lm[36] - lm[45])
    c = np.array([size[1] / 2, size[0] / 2])

    def res(theta, alpha):
        Rm = Rotation.from_rotvec(theta[:3]).as_matrix() @ R
        p = (X0 + np.tensordot(alpha, B, 1)) @ Rm.T + t + theta[3:6]
        return ((f * np.exp(theta[6]) * p[:, :2] / p[:, 2:] + c - lm[INNER]) * scale).ravel()

    def profile(alpha):
        sol = least_squares(res, np.zeros(7), args=(alpha,), xtol=1e-15, ftol=1e-15, gtol=1e-15)
        return float(sol.fun @ sol.fun) / 2.0

    h = 1e-3
    e0 = profile(np.zeros(k))
    grad = np.array([(profile(h * np.eye(k)[i]) - profile(-h * np.eye(k)[i])) / (2 * h) for i in range(k)])
    hess = np.array([[(profile(h * (np.eye(k)[i] + np.eye(k)[j])) - profile(h * (np.eye(k)[i] - np.eye(k)[j]))
                       - profile(h * (np.eye(k)[j] - np.eye(k)[i])) + profile(-h * (np.eye(k)[i] + np.eye(k)[j])))
                      / (4 * h * h) for j in range(k)] for i in range(k)])
    assert ev.q0 / 2 == pytest.approx(e0, rel=1e-4)
    np.testing.assert_allclose(-ev.b, grad, rtol=2e-2, atol=2e-2 * np.abs(grad).max())
    # Gauss-Newton Hessian vs the true one: equal up to the residual's curvature (small here)
    np.testing.assert_allclose(ev.P, hess, rtol=5e-2, atol=5e-2 * np.abs(hess).max())


def test_linearise_rejects_bad_landmarks():
    from digitaltwin_jax.model.head_model import load_head_model

    model = load_head_model("low")
    lm, size, R, t, f, idx, w = _photo(model, np.random.default_rng(0), np.zeros(2))
    bad = lm.copy()
    bad[30] = np.nan
    with pytest.raises(ValueError, match="finite inner"):
        linearise(model, bad, size, R, t, f, sample_indices=idx, sample_weights=w, beta_precision=1.0)


def test_eigen_form_equals_the_cholesky_form():
    from digitaltwin_jax.shape_prior.evidence import log_evidence_eig

    rng = np.random.default_rng(5)
    J, r0 = _linear_problem(rng, n=20, k=6)
    P, b, q0 = J.T @ J, -J.T @ r0, r0 @ r0
    lam, U = np.linalg.eigh(P)
    mu = rng.normal(size=6)
    with jax.enable_x64(True):
        a = float(log_evidence(P, b, q0, 20.0, jnp.asarray(mu), 0.4, -0.3))
        e = float(log_evidence_eig(lam, U, b, q0, 20.0, jnp.asarray(mu), 0.4, -0.3))
    assert e == pytest.approx(a, rel=1e-12)
