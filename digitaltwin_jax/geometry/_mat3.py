"""Private: small 3x3 / 3-vector maths in "components first" layout.

Vectors are ``(3, ...)`` and matrices ``(3, 3, ...)`` with the batch (vertex) axes *last*.  XLA on
CPU vectorises element-wise work along the minor axis well but handles reductions and batched dots
over a trailing axis of size 3 badly (10-30x slower); keeping the vertex axis minor makes every
operation here a plain vectorised loop.  Used by dr.py (encode / decode kernels); the public,
conventional-layout versions live in rotations.py and dr.py and are tested against these.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_SMALL = 1e-4  # squared angle below which Taylor branches are used


# Contractions are written as explicit three-term sums: besides being fast, this avoids an XLA CPU
# miscompilation seen (jax 0.10.2) for vmapped ``sum(broadcast(x) * broadcast(y), axis)`` patterns.


def mm(a, b):
    """``a @ b`` for ``(3, 3, ...)`` matrices."""
    return jnp.stack(
        [jnp.stack([a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j] for j in range(3)]) for i in range(3)]
    )


def mv(a, x):
    """``a @ x`` for ``(3, 3, ...)`` matrices and ``(3, ...)`` vectors."""
    return jnp.stack([a[i, 0] * x[0] + a[i, 1] * x[1] + a[i, 2] * x[2] for i in range(3)])


def fro2(a):
    """Squared Frobenius norm of ``(3, 3, ...)`` matrices."""
    return sum(a[i, j] * a[i, j] for i in range(3) for j in range(3))


def tr(a):
    """Transpose of ``(3, 3, ...)`` matrices."""
    return jnp.swapaxes(a, 0, 1)


def eye_like(x):
    """Identity ``(3, 3, ...)`` with the batch shape of ``x`` (``(..., )``)."""
    e = jnp.eye(3, dtype=x.dtype).reshape((3, 3) + (1,) * x.ndim)
    return jnp.broadcast_to(e, (3, 3) + x.shape)


def det(m):
    return (
        m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
        - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
        + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
    )


def cofactor(m):
    """Cofactor matrix C: ``inv(m)^T = C / det(m)``."""
    c = lambda r0, r1, c0, c1: m[r0, c0] * m[r1, c1] - m[r0, c1] * m[r1, c0]
    return jnp.stack(
        [
            jnp.stack([c(1, 2, 1, 2), -c(1, 2, 0, 2), c(1, 2, 0, 1)]),
            jnp.stack([-c(0, 2, 1, 2), c(0, 2, 0, 2), -c(0, 2, 0, 1)]),
            jnp.stack([c(0, 1, 1, 2), -c(0, 1, 0, 2), c(0, 1, 0, 1)]),
        ]
    )


def cross(a, b):
    return jnp.stack(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def sym(a):
    return 0.5 * (a + tr(a))


def sym_to6(s):
    """``(3, 3, ...)`` symmetric -> ``(6, ...)`` (xx, xy, xz, yy, yz, zz)."""
    return jnp.stack([s[0, 0], s[0, 1], s[0, 2], s[1, 1], s[1, 2], s[2, 2]])


def sym_from6(s6):
    xx, xy, xz, yy, yz, zz = (s6[k] for k in range(6))
    return jnp.stack([jnp.stack([xx, xy, xz]), jnp.stack([xy, yy, yz]), jnp.stack([xz, yz, zz])])


def exp_so3(v):
    """Rodrigues: ``(3, ...)`` axis-angle -> ``(3, 3, ...)`` rotation; any angle, Taylor near 0."""
    t2 = dot(v, v)
    small = t2 < _SMALL
    t2s = jnp.where(small, 1.0, t2)
    t = jnp.sqrt(t2s)
    a = jnp.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, jnp.sin(t) / t)
    b = jnp.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - jnp.cos(t)) / t2s)
    x, y, z = v[0], v[1], v[2]
    # R = I + a K + b K^2, K^2 = v v^T - t2 I
    return jnp.stack(
        [
            jnp.stack([1.0 + b * (x * x - t2), -a * z + b * x * y, a * y + b * x * z]),
            jnp.stack([a * z + b * x * y, 1.0 + b * (y * y - t2), -a * x + b * y * z]),
            jnp.stack([-a * y + b * x * z, a * x + b * y * z, 1.0 + b * (z * z - t2)]),
        ]
    )


def log_so3(r):
    """Principal log ``(3, ...)`` (angle in [0, pi]) of ``(3, 3, ...)`` rotations, via the quaternion.

    Shepperd's branch selection (largest quaternion component from the trace); finite values and
    gradients near the identity and near (not at) pi.
    """
    m00, m11, m22 = r[0, 0], r[1, 1], r[2, 2]
    t = m00 + m11 + m22
    d21, d02, d10 = r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]
    s01, s02, s12 = r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]
    cands = [
        (1.0 + t, d21, d02, d10),
        (d21, 1.0 + m00 - m11 - m22, s01, s02),
        (d02, s01, 1.0 - m00 + m11 - m22, s12),
        (d10, s02, s12, 1.0 - m00 - m11 + m22),
    ]
    diag = jnp.stack([1.0 + t, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22])
    k = jnp.argmax(diag, axis=0)
    q = [
        jnp.where(k == 0, cands[0][c], jnp.where(k == 1, cands[1][c], jnp.where(k == 2, cands[2][c], cands[3][c])))
        for c in range(4)
    ]
    # row k is 4 q_k q; normalise and make w >= 0
    n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]
    inv = jax.lax.rsqrt(n2) * jnp.where(q[0] < 0, -1.0, 1.0)
    w = q[0] * inv
    xyz = jnp.stack([q[1] * inv, q[2] * inv, q[3] * inv])
    s2 = dot(xyz, xyz)
    small = s2 < _SMALL
    s = jnp.sqrt(jnp.where(small, 1.0, s2))
    ws = jnp.where(small, w, 1.0)
    # the same Taylor branch as rotations.quaternion_to_axis_angle on purpose: its components-first twin
    r2 = s2 / (ws * ws)
    taylor = (2.0 / ws) * (1.0 - r2 / 3.0 + r2 * r2 / 5.0)
    scale = jnp.where(small, taylor, 2.0 * jnp.arctan2(s, w) / s)
    return scale * xyz


def smallest_eigenvector_sym(a):
    """Unit eigenvector of the smallest eigenvalue of symmetric ``(3, 3, ...)`` matrices.

    Closed form (trigonometric eigenvalue, then the largest cross product of two rows of
    ``a - lambda I``).  When the two smallest eigenvalues coincide any vector of their plane is
    returned.  Callers feed a safe input where the result is not used (gradients stay finite).
    """
    p1 = a[0, 1] ** 2 + a[0, 2] ** 2 + a[1, 2] ** 2
    q = (a[0, 0] + a[1, 1] + a[2, 2]) / 3.0
    p2 = (a[0, 0] - q) ** 2 + (a[1, 1] - q) ** 2 + (a[2, 2] - q) ** 2 + 2.0 * p1
    ok = p2 > 1e-30
    p = jnp.sqrt(jnp.where(ok, p2, 6.0) / 6.0)
    b = (a - q * eye_like(q)) / p
    eps = 1e-6
    rr = jnp.clip(det(b) / 2.0, -1.0 + eps, 1.0 - eps)
    phi = jnp.arccos(rr) / 3.0
    lam = q + 2.0 * p * jnp.cos(phi + 2.0 * math.pi / 3.0)
    m = a - lam * eye_like(lam)
    c = [cross(m[0], m[1]), cross(m[0], m[2]), cross(m[1], m[2])]
    n = [dot(x, x) for x in c]
    best = jnp.where(n[0] >= n[1], jnp.where(n[0] >= n[2], 0, 2), jnp.where(n[1] >= n[2], 1, 2))
    v = jnp.where(best == 0, c[0], jnp.where(best == 1, c[1], c[2]))
    nv = jnp.where(best == 0, n[0], jnp.where(best == 1, n[1], n[2]))
    good = ok & (nv > 1e-30)
    v = jnp.where(good, v * jax.lax.rsqrt(jnp.where(good, nv, 1.0)), jnp.stack([jnp.zeros_like(q), jnp.zeros_like(q), jnp.ones_like(q)]))
    return v


def polar(t, iterations: int):
    """Polar decomposition ``T = R S`` of ``(3, 3, ...)`` matrices, R proper; see dr.polar_decomposition."""
    d = det(t)
    scale2 = fro2(t)
    scale = jnp.sqrt(scale2)
    eye = eye_like(d)
    nonsing = jnp.abs(d) > 1e-9 * scale2 * scale
    # a collapsed (singular) map is regularised so the iteration stays finite
    x = jnp.where(nonsing, t, t + (1e-3 * scale + 1e-30) * jnp.where(d < 0, -1.0, 1.0) * eye)
    def newton(x, _):
        inv_t = cofactor(x) / det(x)
        g = jnp.sqrt(jnp.sqrt(fro2(inv_t) / fro2(x)))
        return 0.5 * (g * x + inv_t / g), None

    # a scan (not a Python loop) keeps the traced graph, and so compile time, small
    x, _ = jax.lax.scan(newton, x, None, length=iterations)
    q = x  # orthogonal polar factor, det = sign(det T)
    refl = d < 0
    s0 = sym(mm(tr(q), t))
    safe = jnp.where(refl, s0, jnp.diag(jnp.array([3.0, 2.0, 1.0], t.dtype)).reshape((3, 3) + (1,) * d.ndim))
    v = smallest_eigenvector_sym(safe)
    qv = mv(q, v)
    r_refl = q - 2.0 * qv[:, None] * v[None, :]
    r = jnp.where(refl, r_refl, q)
    s = jnp.where(refl, sym(mm(tr(r), t)), s0)
    return r, s
