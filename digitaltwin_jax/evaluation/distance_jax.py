"""Differentiable exact point-to-triangle distance in JAX (paper section 4.3, for use in losses).

The same Ericson region tests as :mod:`digitaltwin_jax.evaluation.distance`, written for one point
and one triangle so that ``jax.vmap`` batches it and ``jax.grad`` differentiates it.  Every division
is by a triangle constant (``|ab|^2``, ``|ac|^2``, ``|bc|^2``, ``|ab x ac|^2``) guarded by the "double
where" pattern, so no branch produces a NaN value or gradient, also for degenerate triangles; the
square root of a zero distance uses the same pattern (zero gradient there).

Degenerate triangles (``2 area <= rel * longest_edge^2``, ``rel = sqrt(eps)``: 1.5e-8 in float64
as in :mod:`.distance`, 3.5e-4 in float32) are measured as their longest edge (a segment; a point
when the corners coincide), as libigl does; the error of that choice is at most
``rel * longest_edge``.  In the face region ``(s, t)`` come from the plane's dual basis (error
``~eps / aspect`` on slivers, where Ericson's ``(vb, vc) / |n|^2`` has ``eps / aspect^2``).

The search for the closest triangle is not differentiable (it is a discrete choice); the usual
pattern is: find ``face_ids`` with the accelerated numpy :func:`~.distance.closest_points`, then
differentiate :func:`point_mesh_distance_given_faces` through the chosen triangles.  For small
meshes, :func:`point_mesh_squared_distance_dense` takes the minimum over all triangles in JAX.

Arrays: points ``(..., 3)``, vertices ``(V, 3)``, faces ``(F, 3) int``; float32 or float64 (enable
x64 locally with ``jax.enable_x64(True)`` when float64 matters).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "closest_point_on_triangle",
    "point_triangle_squared_distance",
    "point_mesh_distance_given_faces",
    "point_mesh_squared_distance_dense",
]


def closest_point_on_triangle(p, a, b, c):
    """Exact closest point of triangle ``(a, b, c)`` to ``p`` (one pair; vmap for batches).

    Args:
      p, a, b, c: ``(3,) float`` point and triangle corners (a degenerate triangle is measured as
        its longest edge, or as a point, see the module docstring).

    Returns:
      ``(closest (3,), barycentrics (3,))`` with ``closest = u a + v b + w c``.
    """
    ab = b - a
    ac = c - a
    ap = p - a
    abab = ab @ ab
    abac = ab @ ac
    acac = ac @ ac
    d1 = ab @ ap
    d2 = ac @ ap
    # the same region terms as geometry/point_triangle.py on purpose: this is the JAX (differentiable) twin
    d3 = d1 - abab
    d4 = d2 - abac
    d5 = d1 - abac
    d6 = d2 - acac
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    # denominators: va + vb + vc = |ab x ac|^2, d1 - d3 = |ab|^2, d2 - d6 = |ac|^2,
    # (d4 - d3) + (d5 - d6) = |bc|^2 -- constants of the triangle, all > 0 if non-degenerate
    n = jnp.cross(ab, ac)
    area2 = n @ n  # = abab * acac - abac^2, without its cancellation on thin triangles
    bc = c - b
    bcbc = bc @ bc
    longest2 = jnp.maximum(jnp.maximum(abab, acac), bcbc)
    rel = float(jnp.finfo(area2.dtype).eps) ** 0.5
    # divisors are used only above ``tiny`` (their square is a normal number, so the gradient of the
    # unused branch, -num / x^2, is never 0/0) and, for the edge lengths, above ``rel^2 longest^2``:
    # every edge of a non-degenerate triangle is that long (area2 <= longest2 * edge2), so only
    # degenerate triangles, which take the segment branch below, ever see the guard's 1
    tiny = float(jnp.finfo(area2.dtype).tiny) ** 0.5
    degenerate = area2 <= (rel * longest2) ** 2
    floor = jnp.maximum(rel * rel * longest2, tiny)
    inv_area2 = 1.0 / _safe(area2, ~degenerate & (area2 > tiny))
    s = ap @ jnp.cross(ac, n) * inv_area2  # face region: the plane projection's coordinates
    t = ap @ jnp.cross(n, ab) * inv_area2
    w = (d4 - d3) / _safe(bcbc, bcbc > floor)
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)  # edge BC
    s, t = jnp.where(m, 1.0 - w, s), jnp.where(m, w, t)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge AC
    s, t = jnp.where(m, 0.0, s), jnp.where(m, d2 / _safe(acac, acac > floor), t)
    m = (d6 >= 0) & (d5 <= d6)  # vertex C
    s, t = jnp.where(m, 0.0, s), jnp.where(m, 1.0, t)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge AB
    s, t = jnp.where(m, d1 / _safe(abab, abab > floor), s), jnp.where(m, 0.0, t)
    m = (d3 >= 0) & (d4 <= d3)  # vertex B
    s, t = jnp.where(m, 1.0, s), jnp.where(m, 0.0, t)
    m = (d1 <= 0) & (d2 <= 0)  # vertex A
    s, t = jnp.where(m, 0.0, s), jnp.where(m, 0.0, t)
    closest = a + s * ab + t * ac
    bary = jnp.stack([1.0 - s - t, s, t])
    # degenerate: clamped projection onto the longest edge (first of ab, ac, bc on ties, as numpy)
    use_ab = (abab >= acac) & (abab >= bcbc)
    from_a = use_ab | (acac >= bcbc)
    p0 = jnp.where(from_a, a, b)
    seg = jnp.where(use_ab, b, c) - p0
    seg2 = seg @ seg
    tau = jnp.clip(seg @ (p - p0) / _safe(seg2, seg2 > tiny), 0.0, 1.0)  # below tiny: a point
    eye = jnp.eye(3, dtype=bary.dtype)
    seg_bary = (1.0 - tau) * jnp.where(from_a, eye[0], eye[1]) + tau * jnp.where(use_ab, eye[1], eye[2])
    closest = jnp.where(degenerate, p0 + tau * seg, closest)
    return closest, jnp.where(degenerate, seg_bary, bary)


def _safe(x, ok):
    """``x`` where ``ok``, else 1: a divisor whose unused branch has no inf/NaN value or gradient."""
    return jnp.where(ok, x, jnp.ones_like(x))


def point_triangle_squared_distance(p, a, b, c):
    """Squared distance from ``p`` to the triangle ``(a, b, c)``; ``(3,)`` inputs, scalar output."""
    closest, _ = closest_point_on_triangle(p, a, b, c)
    d = p - closest
    return d @ d


def _safe_sqrt(x):
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


@jax.jit
def point_mesh_distance_given_faces(points, vertices, faces, face_ids):
    """Distance from each point to a chosen triangle of a mesh (differentiable in points and vertices).

    Args:
      points: ``(N, 3) float``.
      vertices: ``(V, 3) float``; faces: ``(F, 3) int``.
      face_ids: ``(N,) int`` triangle per point, e.g. ``closest_points(...).face_ids`` (then the
        value equals the exact point-to-mesh distance).

    Returns:
      ``(N,)`` distances (dtype of the inputs).
    """
    tri = jnp.asarray(vertices)[jnp.asarray(faces)[jnp.asarray(face_ids)]]  # (N, 3, 3)
    sq = jax.vmap(point_triangle_squared_distance)(jnp.asarray(points), tri[:, 0], tri[:, 1], tri[:, 2])
    return _safe_sqrt(sq)


@jax.jit
def point_mesh_squared_distance_dense(points, vertices, faces):
    """Squared distance from each point to a mesh by brute force over all triangles (N x F work).

    Meant for small meshes or inside losses; use :func:`~.distance.point_to_mesh_distance` for
    evaluation-sized inputs.

    Args:
      points: ``(N, 3) float``; vertices: ``(V, 3) float``; faces: ``(F, 3) int``.

    Returns:
      ``(N,)`` squared distances.
    """
    tri = jnp.asarray(vertices)[jnp.asarray(faces)]  # (F, 3, 3)
    per_tri = jax.vmap(point_triangle_squared_distance, in_axes=(None, 0, 0, 0))
    return jax.vmap(lambda p: jnp.min(per_tri(p, tri[:, 0], tri[:, 1], tri[:, 2])))(jnp.asarray(points))
