"""Rotations: unit quaternions (paper section 3.4, the extrinsic T = (q, t)) and axis-angle maps.

Axis-angle vectors ``v = theta * omega`` (``(..., 3)``, |omega| = 1) are the matrix logarithm of
supplementary eq. 6 (``log R = hat(v)``); :func:`axis_angle_to_matrix` is the exponential map
(Rodrigues) and accepts any angle, :func:`matrix_to_axis_angle` the principal logarithm (angle in
[0, pi]).  Both use the "double where" pattern for theta -> 0 (Taylor branches), so values and
gradients stay finite at and near the identity; the log goes through the quaternion, which keeps it
accurate and differentiable up to (not at) theta = pi, where the logarithm itself is discontinuous.

Quaternions are ``(..., 4)`` arrays in ``(w, x, y, z)`` order (scalar first, as jaxlie).  They need
not be normalised on input: :func:`quaternion_to_matrix` normalises inside, so an optimiser can move
``q`` freely (the paper's Gauss-Newton does).  All functions are pure, jit/vmap/grad friendly.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "quaternion_to_matrix",
    "quaternion_to_matrix_np",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "quaternion_angle",
    "hat",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
]


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


def quaternion_to_matrix_np(q) -> np.ndarray:
    """numpy :func:`quaternion_to_matrix` in float64 (no JAX dispatch: for host-side results such as
    a fitted pose): ``(..., 4)`` ``(w, x, y, z)`` -> ``(..., 3, 3)`` rotation of ``q / |q|``."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1)
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


def hat(v):
    """Skew matrix ``(..., 3, 3)`` of ``(..., 3)`` vectors: ``hat(v) @ x == cross(v, x)``."""
    v = jnp.asarray(v)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = jnp.zeros_like(x)
    return jnp.stack([o, -z, y, z, o, -x, -y, x, o], axis=-1).reshape(v.shape[:-1] + (3, 3))


_SMALL = 1e-4  # squared-angle threshold (theta < 1e-2) for the Taylor branches


def axis_angle_to_matrix(v):
    """Exponential map: rotation matrix ``(..., 3, 3)`` of axis-angle vectors ``v (..., 3)`` (radians).

    ``R = I + A hat(v) + B hat(v)^2`` with ``A = sin(t)/t``, ``B = (1 - cos t)/t^2``, ``t = |v|``; any
    angle (also beyond pi) is accepted.  Taylor series for ``t < 1e-2``.
    """
    v = jnp.asarray(v)
    t2 = jnp.sum(v * v, axis=-1)
    small = t2 < _SMALL
    t2s = jnp.where(small, 1.0, t2)
    t = jnp.sqrt(t2s)
    a = jnp.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, jnp.sin(t) / t)
    b = jnp.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - jnp.cos(t)) / t2s)
    k = hat(v)
    eye = jnp.eye(3, dtype=k.dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def axis_angle_to_quaternion(v):
    """Unit quaternion ``(..., 4)`` (w, x, y, z) of axis-angle vectors ``v (..., 3)``."""
    v = jnp.asarray(v)
    t2 = jnp.sum(v * v, axis=-1)
    small = t2 < _SMALL
    t2s = jnp.where(small, 1.0, t2)
    t = jnp.sqrt(t2s)
    # sin(t/2)/t and cos(t/2)
    s = jnp.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, jnp.sin(0.5 * t) / t)
    c = jnp.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, jnp.cos(0.5 * t))
    return jnp.concatenate([c[..., None], s[..., None] * v], axis=-1)


def quaternion_to_axis_angle(q):
    """Principal axis-angle ``(..., 3)`` (angle in [0, pi]) of a (not necessarily unit) quaternion.

    ``q`` and ``-q`` give the same result.  Finite values and gradients near the identity.
    """
    q = jnp.asarray(q)
    q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
    q = q * jnp.where(q[..., :1] < 0, -1.0, 1.0)
    w, xyz = q[..., 0], q[..., 1:]
    s2 = jnp.sum(xyz * xyz, axis=-1)
    small = s2 < _SMALL
    s = jnp.sqrt(jnp.where(small, 1.0, s2))
    ws = jnp.where(small, w, 1.0)
    # theta / s with theta = 2 atan2(s, w); for small s: (2 / w) (1 - s^2 / (3 w^2) + s^4 / (5 w^4))
    r2 = s2 / (ws * ws)
    taylor = (2.0 / ws) * (1.0 - r2 / 3.0 + r2 * r2 / 5.0)
    scale = jnp.where(small, taylor, 2.0 * jnp.arctan2(s, w) / s)
    return scale[..., None] * xyz


def matrix_to_axis_angle(r):
    """Principal logarithm of rotation matrices: axis-angle ``(..., 3)`` with angle in [0, pi].

    ``hat(result)`` is the matrix logarithm of supplementary eq. 6.  Values and gradients are finite
    near the identity and near (not at) an angle of pi.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(r))
