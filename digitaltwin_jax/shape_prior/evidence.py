"""How much a photo's landmarks say about identity: the linearised landmark model and its evidence.

The landmark energy (paper eq. 1, :mod:`digitaltwin_jax.energies.landmarks`) read as a likelihood: the
scaled residual of inner landmark ``j`` (percent of the eye distance) is Gaussian,

    r_j = (100 / W_eye) (pi(K (R (X_j(alpha, beta) + Delta_j) + t)) - L_j) ~ N(0, kappa^2 s_j^2 I_2),

with ``X_j`` the model's landmark sample on the head ``mean + B alpha + E beta``, ``Delta_j`` the
detector's offset (:mod:`digitaltwin_jax.multiview.landmark_offsets`, zero when not used), ``s_j`` the
detector's relative noise at ``j`` and ``kappa`` the noise scale.  Around the pose, focal and
expression that best explain the landmarks with ``alpha = 0`` (:func:`nuisance_fit`), the residual is
linear in ``alpha`` and the nuisance ``theta = (rotation, translation, log focal, beta)``; eliminating
``theta`` (its prior on ``beta`` as in eq. 3) leaves, per photo, an information matrix and vector

    P = J_a^T W J_a - H_an H_nn^-1 H_na,    b = -(J_a^T W r_0 - H_an H_nn^-1 g_n)      (in kappa = 1 units)

so that ``log p(landmarks | alpha) = const - 1/2 alpha^T P alpha / kappa^2 + b^T alpha / kappa^2``.
With the identity prior ``alpha ~ N(mu, sigma^2 I)`` the landmarks' marginal likelihood (the
*evidence*) is Gaussian in closed form (:func:`log_evidence`):

    log p = -Q_0 / (2 kappa^2) - n log kappa + 1/2 h^T A^-1 h - mu^T mu / (2 sigma^2)
            - 1/2 log det A - K/2 log sigma^2,      A = P / kappa^2 + I / sigma^2,  h = b / kappa^2 + mu / sigma^2

(``Q_0 = r_0^T W r_0``, ``n`` = residual rows minus nuisance unknowns).  Empirical Bayes
(:mod:`digitaltwin_jax.shape_prior.calibrate`) chooses the template correction, the regressor's
trust and ``sigma`` that maximise the summed evidence of many real photos: no 3D truth needed.

Only the 51 inner landmarks enter (iBUG 17-67): the jaw points slide over the surface with the pose
(:func:`~digitaltwin_jax.energies.landmarks.select_contour`), which is not a fixed linear model.
Arrays are float64 (the Schur complements lose digits in float32).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import project_pinhole
from digitaltwin_jax.energies.landmarks import eye_distance
from digitaltwin_jax.geometry.rotations import axis_angle_to_matrix

__all__ = ["INNER", "PhotoEvidence", "nuisance_fit", "linearise", "log_evidence", "log_evidence_fixed",
           "log_evidence_eig"]

#: iBUG indices of the inner landmarks (brows, nose, eyes, mouth): the ones with fixed samples.
INNER = np.arange(17, 68)


@dataclasses.dataclass(frozen=True)
class PhotoEvidence:
    """What one photo's inner landmarks say about the identity coefficients (kappa = 1 units).

    Attributes:
      P: ``(K, K) float64`` information matrix (symmetric, positive semi-definite).
      b: ``(K,) float64`` information vector.
      q0: ``()`` weighted squared residual ``r_0^T W r_0`` at ``alpha = 0`` (nuisance optimal).
      dof: residual rows minus nuisance unknowns.
    """

    P: np.ndarray
    b: np.ndarray
    q0: float
    dof: int


def _pixels(alpha, theta, consts):
    """``(L, 2)`` pixels of the inner samples for identity ``alpha (K,)`` and nuisance ``theta``
    ``(3 rotation-vector, 3 translation, 1 log focal, M beta)`` around the reference pose."""
    X0, Bi, Ei, R0, t0, f0, c = consts
    m = Ei.shape[0]
    rot, t, logf, beta = theta[:3], theta[3:6], theta[6], theta[7:7 + m]
    X = X0 + jnp.tensordot(alpha, Bi, axes=1) + jnp.tensordot(beta, Ei, axes=1)
    R = axis_angle_to_matrix(rot) @ R0
    return project_pinhole(X @ R.T + t0 + t, f0 * jnp.exp(logf), c)


def _residual(alpha, theta, consts, landmarks, scale, sqrt_w):
    return ((_pixels(alpha, theta, consts) - landmarks) * scale * sqrt_w[:, None]).reshape(-1)


def _samples(model, indices, weights, vertices):
    """Barycentric samples ``(..., L, 3)`` of ``vertices (..., V, 3)`` at ``indices/weights (L, 3)``."""
    return np.sum(np.asarray(vertices, np.float64)[..., indices, :] * weights[..., None], axis=-2)


def _consts(model, sample_indices, sample_weights, base, rotation, translation, focal, principal, offsets):
    idx = np.asarray(sample_indices)[INNER]
    w = np.asarray(sample_weights, np.float64)[INNER]
    X0 = _samples(model, idx, w, base)
    if offsets is not None:
        X0 = X0 + np.asarray(offsets, np.float64)[INNER]
    Bi = _samples(model, idx, w, model.identity_basis)
    Ei = _samples(model, idx, w, model.expression_basis)
    return (X0, Bi, Ei, np.asarray(rotation, np.float64), np.zeros(3), float(focal), np.asarray(principal, np.float64)), \
        np.asarray(translation, np.float64)


def nuisance_fit(consts, landmarks, scale, sqrt_w, prior_precision, prior_mean, iterations: int = 20):
    """Levenberg-Marquardt on ``theta`` with ``alpha = 0``: ``(theta (7 + M,), residual r_0)``.

    The energy is ``|r(theta)|^2 + sum_i prior_precision_i (theta_i - prior_mean_i)^2`` (the fit's
    eq. 3 priors: rotation and translation free, log focal ``omega_r lambda_f``, ``beta``
    ``omega_r / sigma^2``).  A step is kept only when it lowers the energy (the focal scale and the
    distance are nearly interchangeable, so plain Gauss-Newton steps can overshoot).
    """
    K = consts[1].shape[0]
    alpha = jnp.zeros(K)
    f = lambda th: _residual(alpha, th, consts, landmarks, scale, sqrt_w)  # noqa: E731
    energy = lambda th, r: r @ r + jnp.sum(prior_precision * (th - prior_mean) ** 2)  # noqa: E731

    def body(_, state):
        theta, mu = state
        r = f(theta)
        J = jax.jacfwd(f)(theta)
        H = J.T @ J + jnp.diag(prior_precision)
        g = J.T @ r + prior_precision * (theta - prior_mean)
        step = jnp.linalg.solve(H + mu * jnp.diag(jnp.diagonal(H) + 1e-9), g)
        cand = theta - step
        better = energy(cand, f(cand)) < energy(theta, r)
        return jnp.where(better, cand, theta), jnp.where(better, mu * 0.3, mu * 10.0)

    theta, _ = jax.lax.fori_loop(0, iterations, body, (jnp.zeros_like(prior_precision), jnp.asarray(1e-3)))
    return theta, f(theta)


def linearise(model, landmarks, image_size, rotation, translation, focal, *, sample_indices, sample_weights,
              base=None, offsets=None, noise=None, beta_precision: float, focal_precision: float = 0.0,
              focal_prior: float | None = None, num_identity: int | None = None, iterations: int = 20) -> PhotoEvidence:
    """The information one photo's inner landmarks carry about ``alpha`` (module docstring).

    Args:
      model: the :class:`~digitaltwin_jax.model.HeadModel`.
      landmarks: ``(68, 2)`` detected pixels (only rows 17-67 are used; they must be finite).
      image_size: ``(h, w)``.
      rotation, translation, focal: a reference camera (head -> camera ``R p + t``, focal in pixels),
        e.g. the template fit's; the nuisance fit refines it.
      sample_indices, sample_weights: ``(68, 3)`` the landmark samples (``FitResult.landmark_indices``
        / ``landmark_weights``).
      base: ``(V, 3)`` the head ``alpha`` is measured from (default the model's mean).
      offsets: ``(68, 3)`` detector offsets Delta (head frame, mm) or None.
      noise: ``(68,)`` relative detector noise ``s_j`` (default 1).
      beta_precision: prior precision of each blendshape weight (``omega_r / sigma^2`` of eq. 3).
      focal_precision, focal_prior: prior precision of ``log(f / focal_prior)`` (``omega_r lambda_f``
        and ``max(h, w)`` for the fit's eq. 3 prior; default 0: free focal).
      num_identity: how many leading identity modes (default all).

    Returns:
      :class:`PhotoEvidence`.

    Raises:
      ValueError: non-finite inner landmarks or a degenerate eye distance.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm[INNER])):
        raise ValueError(f"landmarks must be (68, 2) with finite inner points, got {lm.shape}")
    w_eye = eye_distance(lm)
    if not np.isfinite(w_eye) or w_eye < 1.0:
        raise ValueError(f"degenerate eye distance {w_eye}")
    h, w = image_size
    focal_prior = float(max(h, w)) if focal_prior is None else float(focal_prior)
    base = model.vertices if base is None else base
    consts, t_ref = _consts(model, sample_indices, sample_weights, base, rotation, translation, focal,
                            (w / 2.0, h / 2.0), offsets)
    k = model.num_identity if num_identity is None else int(num_identity)
    consts = (consts[0], consts[1][:k], consts[2], consts[3], jnp.asarray(t_ref), consts[5], consts[6])
    s = np.ones(68) if noise is None else np.asarray(noise, np.float64)
    sqrt_w = 1.0 / s[INNER]
    m = model.num_expressions
    prior = np.concatenate([np.zeros(6), [float(focal_precision)], np.full(m, float(beta_precision))])
    prior_mean = np.zeros(prior.size)
    prior_mean[6] = np.log(focal_prior / float(focal))  # the focal prior is on f / focal_prior
    with jax.enable_x64(True):
        consts = jax.tree_util.tree_map(jnp.asarray, consts)
        args = (consts, jnp.asarray(lm[INNER]), 100.0 / w_eye, jnp.asarray(sqrt_w))
        theta, r0 = _jit_nuisance(*args, jnp.asarray(prior), jnp.asarray(prior_mean), iterations)
        Ja, Jn = _jit_jacobians(jnp.zeros(k), theta, *args)
        Ja, Jn, r0, theta = (np.asarray(x, np.float64) for x in (Ja, Jn, r0, theta))
    Hnn = Jn.T @ Jn + np.diag(prior)
    Han = Ja.T @ Jn
    gn = Jn.T @ r0 + prior * (theta - prior_mean)
    S = np.linalg.solve(Hnn, Han.T)  # (n, K)
    P = Ja.T @ Ja - Han @ S
    b = -(Ja.T @ r0 - S.T @ gn)
    q0 = float(r0 @ r0 + (theta - prior_mean) @ (prior * (theta - prior_mean)))
    return PhotoEvidence(0.5 * (P + P.T), b, q0, int(r0.size - 7 - m))


_jit_nuisance = jax.jit(nuisance_fit, static_argnums=(6,))


@jax.jit
def _jit_jacobians(alpha, theta, consts, landmarks, scale, sqrt_w):
    ja = jax.jacfwd(_residual, argnums=0)(alpha, theta, consts, landmarks, scale, sqrt_w)
    jn = jax.jacfwd(_residual, argnums=1)(alpha, theta, consts, landmarks, scale, sqrt_w)
    return ja, jn


def log_evidence(P, b, q0, dof, mu, log_sigma2, log_kappa2):
    """Log marginal likelihood of one photo's landmarks (module docstring), up to a constant that
    depends on nothing estimated.  Pure JAX: ``jit``/``vmap``/``grad``.

    Args:
      P: ``(K, K)``; b: ``(K,)``; q0, dof: scalars (:class:`PhotoEvidence`).
      mu: ``(K,)`` prior mean of ``alpha``; log_sigma2: log prior variance (isotropic);
      log_kappa2: log landmark-noise variance (percent of the eye distance squared).
    """
    k = b.shape[0]
    inv_s2 = jnp.exp(-log_sigma2)
    inv_k2 = jnp.exp(-log_kappa2)
    A = P * inv_k2 + inv_s2 * jnp.eye(k)
    h = b * inv_k2 + mu * inv_s2
    L = jnp.linalg.cholesky(A)
    z = jax.scipy.linalg.solve_triangular(L, h, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return (-0.5 * q0 * inv_k2 - 0.5 * dof * log_kappa2 + 0.5 * z @ z - 0.5 * mu @ mu * inv_s2
            - 0.5 * logdet - 0.5 * k * log_sigma2)


def log_evidence_fixed(P, b, q0, dof, mu, log_kappa2):
    """:func:`log_evidence` in the limit ``sigma -> 0``: identity fixed at ``mu`` (no identity fit),
    the same constant dropped.  ``log p = -(Q_0 - 2 b^T mu + mu^T P mu) / (2 kappa^2) - dof/2 log kappa^2``."""
    inv_k2 = jnp.exp(-log_kappa2)
    return -0.5 * (q0 - 2.0 * b @ mu + mu @ P @ mu) * inv_k2 - 0.5 * dof * log_kappa2


def log_evidence_eig(lam, U, b, q0, dof, mu, log_sigma2, log_kappa2):
    """:func:`log_evidence` from the eigendecomposition ``P = U diag(lam) U^T`` (computed once per
    photo): O(K^2) per evaluation instead of a Cholesky factorisation, for the calibration's many
    evaluations.  The prior must be isotropic (it is: ``sigma^2 I``)."""
    k = b.shape[0]
    inv_s2 = jnp.exp(-log_sigma2)
    inv_k2 = jnp.exp(-log_kappa2)
    a = jnp.maximum(lam, 0.0) * inv_k2 + inv_s2
    z = U.T @ (b * inv_k2 + mu * inv_s2)
    return (-0.5 * q0 * inv_k2 - 0.5 * dof * log_kappa2 + 0.5 * jnp.sum(z * z / a) - 0.5 * mu @ mu * inv_s2
            - 0.5 * jnp.sum(jnp.log(a)) - 0.5 * k * log_sigma2)
