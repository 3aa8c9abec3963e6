"""Rotations: unit quaternions (paper section 3.4, the extrinsic T = (q, t)) and axis-angle maps.

Quaternions are ``(..., 4)`` arrays in ``(w, x, y, z)`` order (scalar first, as jaxlie).  They need
not be normalised on input: :func:`quaternion_to_matrix` normalises inside, so an optimiser can move
``q`` freely (the paper's Gauss-Newton does).  All functions are pure, jit/vmap/grad friendly.
"""
from __future__ import annotations

import jax.numpy as jnp

__all__ = ["quaternion_to_matrix", "matrix_to_quaternion", "quaternion_multiply", "quaternion_angle"]


def quaternion_to_matrix(q):
    """Rotation matrix of a (not necessarily unit) quaternion.

    Args:
      q: ``(..., 4)`` float, ``(w, x, y, z)``; must not be zero.

    Returns:
      ``(..., 3, 3)`` rotation matrix of ``q / |q|``.
    """
    q = jnp.asarray(q)
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r = jnp.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(r):
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix ``(..., 3, 3)``.

    Uses the numerically stable branch selection (largest of w, x, y, z computed from the trace)
    implemented with ``jnp.where`` so it works under jit/vmap.
    """
    r = jnp.asarray(r)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    tr = m00 + m11 + m22
    cands = jnp.stack(
        [
            jnp.stack([1 + tr, r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1),
            jnp.stack([r[..., 2, 1] - r[..., 1, 2], 1 + m00 - m11 - m22, r[..., 0, 1] + r[..., 1, 0], r[..., 0, 2] + r[..., 2, 0]], -1),
            jnp.stack([r[..., 0, 2] - r[..., 2, 0], r[..., 0, 1] + r[..., 1, 0], 1 - m00 + m11 - m22, r[..., 1, 2] + r[..., 2, 1]], -1),
            jnp.stack([r[..., 1, 0] - r[..., 0, 1], r[..., 0, 2] + r[..., 2, 0], r[..., 1, 2] + r[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # (..., 4, 4): row k is 4 * q * q_k, best conditioned where q_k is largest
    diag = jnp.stack([1 + tr, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    k = jnp.argmax(diag, axis=-1)
    q = jnp.take_along_axis(cands, k[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    return q * jnp.where(q[..., :1] < 0, -1.0, 1.0)


def quaternion_multiply(a, b):
    """Hamilton product ``a * b`` of ``(..., 4)`` quaternions (rotation b first, then a)."""
    aw, ax, ay, az = jnp.moveaxis(jnp.asarray(a), -1, 0)
    bw, bx, by, bz = jnp.moveaxis(jnp.asarray(b), -1, 0)
    return jnp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quaternion_angle(a, b):
    """Rotation angle (radians, in [0, pi]) between two quaternions; sign-invariant (q ~ -q)."""
    a = jnp.asarray(a) / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = jnp.asarray(b) / jnp.linalg.norm(b, axis=-1, keepdims=True)
    d = jnp.clip(jnp.abs(jnp.sum(a * b, axis=-1)), 0.0, 1.0)
    return 2.0 * jnp.arccos(d)
