"""Regularisers E_r (paper eq. 3) and our identity prior, each a plain residual function.

E_r = sum_i beta_i^2 / sigma_i^2 + lambda_f log^2(f_s) + lambda_q || q (-) q^0 ||^2   (+ lambda_id ||alpha||^2)

* Expression: the paper's sigma_i are PCA eigenvalues of expression data we do not have (the ICT
  blendshapes are artist-made, not PCA modes).  We use one sigma for all blendshapes (a per-shape
  array is accepted), chosen so that a neutral face stays neutral: see
  :class:`digitaltwin_jax.fitting.FitConfig` for the default and the reasoning.
* Focal: ``log f_s`` so that f_s = 1 (f = max(h, w), about a 53 degree field of view) is preferred
  and scaling up or down costs the same.
* Rotation: the paper's "||q||^2" is read as the deviation from the initial (EPnP) pose: the vector
  part of the relative rotation ``q^0* q`` (with the sign that makes its scalar part >= 0), about
  half the rotation angle in radians for small angles.
* Identity (our extension, off in the paper's configuration): the ICT identity coefficients are
  N(0, 1), so ``||alpha||^2`` is their negative log-likelihood up to a factor 2.
* ``quaternion_norm_residual`` fixes the free scale of the (normalised-inside) quaternion so the
  Gauss-Newton normal equations stay non-singular; it does not change the pose.
"""
from __future__ import annotations

import jax.numpy as jnp

from digitaltwin_jax.geometry.rotations import quaternion_multiply

__all__ = [
    "expression_prior_residual",
    "focal_prior_residual",
    "rotation_prior_residual",
    "identity_prior_residual",
    "quaternion_norm_residual",
]


def expression_prior_residual(beta, sigma):
    """``(M,)`` residual ``beta / sigma`` (sigma scalar or ``(M,)``, > 0)."""
    return jnp.asarray(beta) / sigma


def focal_prior_residual(focal_scale):
    """``(1,)`` residual ``log f_s`` (f_s > 0)."""
    return jnp.reshape(jnp.log(focal_scale), (1,))


def rotation_prior_residual(q, q0):
    """``(3,)`` vector part of ``conj(q0) * q`` (both normalised, sign chosen with w >= 0)."""
    q = jnp.asarray(q) / jnp.linalg.norm(q)
    q0 = jnp.asarray(q0) / jnp.linalg.norm(q0)
    rel = quaternion_multiply(q0 * jnp.array([1.0, -1.0, -1.0, -1.0], q0.dtype), q)
    return jnp.where(rel[0] < 0, -1.0, 1.0) * rel[1:]


def identity_prior_residual(alpha):
    """``(K,)`` residual ``alpha`` (N(0, 1) identity coefficients)."""
    return jnp.asarray(alpha)


def quaternion_norm_residual(q):
    """``(1,)`` residual ``|q|^2 - 1`` (gauge of the scale-free quaternion parameter)."""
    return jnp.reshape(jnp.sum(jnp.square(q)) - 1.0, (1,))
