"""Weighted per-vertex L1 loss of the shape regressor (paper section 3.3).

    loss = mean_b [ sum_v w_v * sum_xyz |pred[b, v] - target[b, v]| ] / sum_v w_v

with ``w_v = 5`` within 95 mm of the nose tip and 1 elsewhere (``HeadModel.face_weights``).  The
normalisation by ``sum_v w_v`` keeps the value in millimetres (the weighted mean per-vertex L1
distance) and independent of the mesh resolution; it does not change the minimiser, nor (Adam being
invariant to a constant gradient scale) the training trajectory.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["weighted_l1", "per_vertex_l1"]


def per_vertex_l1(pred: jax.Array, target: jax.Array) -> jax.Array:
    """``(..., V, 3), (..., V, 3) -> (..., V)``: the L1 norm of every vertex's error (mm)."""
    return jnp.sum(jnp.abs(pred - target), axis=-1)


def weighted_l1(pred: jax.Array, target: jax.Array, weights: jax.Array) -> jax.Array:
    """The paper's loss, a scalar (mm).

    Args:
      pred: ``(B, V, 3)`` or ``(V, 3)`` float predicted vertices.
      target: same shape, ground-truth vertices.
      weights: ``(V,)`` float non-negative per-vertex weights (``model.face_weights``).

    Returns:
      ``()`` float32: batch mean of the weighted mean per-vertex L1 error.
    """
    if pred.shape != target.shape or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both be (..., V, 3), got {pred.shape} and {target.shape}")
    if weights.shape != pred.shape[-2:-1]:
        raise ValueError(f"weights must have shape ({pred.shape[-2]},), got {weights.shape}")
    w = jnp.asarray(weights, jnp.float32)
    per = per_vertex_l1(pred, target)  # (..., V)
    return jnp.mean(jnp.sum(per * w, axis=-1) / jnp.sum(w))
