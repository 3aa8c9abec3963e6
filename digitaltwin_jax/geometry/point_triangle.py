"""Triangle-mesh validation, degenerate faces and the exact point-triangle kernel (numpy float64).

The kernel is Ericson's closest-point-on-triangle region tests (Real-Time Collision Detection,
section 5.1.5), vectorised over (point, triangle) pairs with a precomputed dual basis for the face
region; degenerate triangles (zero area up to rounding) are measured as their longest edge or as a
point (:func:`degenerate_faces`).  The accelerated point-to-mesh search that uses it (paper section
4.3) is :mod:`digitaltwin_jax.evaluation.distance`.

Arrays: ``points (N, 3)``, ``vertices (V, 3)``, ``faces (F, 3)`` integer, float64 throughout.
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.geometry.mesh import face_normals_np

__all__ = [
    "validate_points",
    "validate_mesh",
    "degenerate_faces",
    "remove_degenerate_faces",
    "face_normals",
    "closest_points_on_triangles",
]

# A triangle is degenerate when 2*area <= _DEGENERATE_REL * (longest edge)^2 (collinear or repeated
# corners) and is then measured as its longest edge, an error of at most _DEGENERATE_REL x that edge;
# above it the face-region error of the kernel is about eps / _DEGENERATE_REL x the edge.  sqrt(eps)
# balances the two (~1.5e-8 relative at worst).
_DEGENERATE_REL = float(np.sqrt(np.finfo(np.float64).eps))


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def validate_points(points, name: str = "points") -> np.ndarray:
    """Return ``points`` as a C-contiguous ``(N, 3) float64`` array, or raise a clear error.

    Raises:
      TypeError: non-numeric input.
      ValueError: wrong shape, zero points, or NaN/inf entries.
    """
    try:
        p = np.asarray(points)
    except Exception as e:  # ragged lists etc.
        raise TypeError(f"{name} must be an array of shape (N, 3): {e}") from None
    if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
        raise TypeError(f"{name} must be a numeric array, got dtype {p.dtype}")
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {p.shape}")
    if p.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {p.shape})")
    p = np.ascontiguousarray(p, dtype=np.float64)
    if not np.isfinite(p).all():
        bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
        raise ValueError(f"{name} contains NaN or inf in {bad.size} rows (first: {bad[:5].tolist()})")
    return p


def _prepare_mesh(vertices, faces, name: str):
    """Validate a mesh; return (v (V,3) f64, f (F,3) i64, a, ab, ac (F,3) f64, degenerate (F,) bool)."""
    v = validate_points(vertices, f"{name} vertices")
    try:
        f = np.asarray(faces)
    except Exception as e:
        raise TypeError(f"{name} faces must be an integer array of shape (F, 3): {e}") from None
    if f.dtype.kind not in "iu":
        raise TypeError(f"{name} faces must be an integer array, got dtype {f.dtype}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{name} faces must have shape (F, 3), got {f.shape}")
    if f.shape[0] == 0:
        raise ValueError(f"{name} has no faces")
    f = np.ascontiguousarray(f, dtype=np.int64)  # checks like validate_points', for integer faces
    lo, hi = int(f.min()), int(f.max())
    if lo < 0 or hi >= v.shape[0]:
        raise ValueError(f"{name} faces index vertices out of range [0, {v.shape[0]}): min {lo}, max {hi}")
    a = v[f[:, 0]]
    ab = v[f[:, 1]] - a
    ac = v[f[:, 2]] - a
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    return v, f, a, ab, ac, repeated | _degenerate_from_edges(ab, ac)


def _degenerate_from_edges(ab: np.ndarray, ac: np.ndarray) -> np.ndarray:
    """``2 * area <= _DEGENERATE_REL * longest_edge^2`` for triangles with edge vectors ab, ac."""
    cx = ab[:, 1] * ac[:, 2] - ab[:, 2] * ac[:, 1]
    cy = ab[:, 2] * ac[:, 0] - ab[:, 0] * ac[:, 2]
    cz = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    area2_sq = cx * cx + cy * cy + cz * cz  # (2 * area)^2
    longest2 = np.maximum(np.maximum(_sq(ab), _sq(ac)), _sq(ac - ab))
    return area2_sq <= (_DEGENERATE_REL * longest2) ** 2


def _sq(x: np.ndarray) -> np.ndarray:
    """Row-wise squared norm of an (M, 3) array (column arithmetic: much faster than .sum(1))."""
    return x[:, 0] * x[:, 0] + x[:, 1] * x[:, 1] + x[:, 2] * x[:, 2]


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x[:, 0] * y[:, 0] + x[:, 1] * y[:, 1] + x[:, 2] * y[:, 2]


def degenerate_faces(vertices, faces) -> np.ndarray:
    """Boolean mask ``(F,)`` of degenerate faces: repeated corner indices or (near-)zero area.

    A face counts as degenerate when ``2 * area <= 1.5e-8 * longest_edge^2`` (``sqrt(eps)``:
    collinear or coincident corners up to rounding): the distance functions measure it as its
    longest edge (or as a point when its corners coincide), which is off by at most ``1.5e-8``
    times that edge -- less than the rounding error of any triangle formula on such a sliver.
    """
    return _prepare_mesh(vertices, faces, "mesh")[5]


def remove_degenerate_faces(vertices, faces) -> np.ndarray:
    """Faces ``(F', 3) int64`` with the degenerate ones (see :func:`degenerate_faces`) dropped.

    Optional clean-up: the distance functions measure degenerate faces exactly (as segments or
    points); in a manifold mesh a zero-area face lies on its neighbours' edges and contributes no
    distance they do not, but an isolated one (a stray sliver in a scan) is part of the surface.
    """
    _, f, _, _, _, deg = _prepare_mesh(vertices, faces, "mesh")
    return f[~deg]


def validate_mesh(vertices, faces, name: str = "mesh") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(vertices (V, 3) float64, faces (F, 3) int64)`` or raise a clear error.

    Degenerate (zero-area) faces, duplicate and unreferenced vertices and non-manifold edges are
    accepted: every function of this module measures them (see the module docstring).

    Raises:
      TypeError: non-numeric vertices or non-integer faces.
      ValueError: wrong shapes, NaN/inf vertices, no faces, or face indices out of range.
    """
    v, f, _, _, _, _ = _prepare_mesh(vertices, faces, name)
    return v, f


def face_normals(vertices, faces) -> np.ndarray:
    """Unit face normals ``(F, 3) float64`` (right-hand rule on the corner order; zero if degenerate):
    :func:`digitaltwin_jax.geometry.mesh.face_normals_np`."""
    return face_normals_np(vertices, faces)


# --------------------------------------------------------------------------------------------------
# the exact kernel (structure of arrays: every argument is a contiguous (M,) float64 row)
# --------------------------------------------------------------------------------------------------
def _closest_st(apx, apy, apz, abx, aby, abz, acx, acy, acz, abab, abac, acac,
                ux, uy, uz, wx, wy, wz, iab, iac, ibc):
    """Ericson's region tests, vectorised; the closest point is ``a + s ab + t ac``.

    Args are (M,) float64 rows: ``ap``, ``ab``, ``ac`` components, ``|ab|^2, ab.ac, |ac|^2``, the
    dual basis ``u = (ac x n) / |n|^2``, ``w = (n x ab) / |n|^2`` (``n = ab x ac``) and the
    reciprocals ``1/|ab|^2, 1/|ac|^2, 1/|bc|^2`` (constants of the triangle).

    Returns ``(sq_dist, s, t)``, each (M,) float64.  Early returns of the scalar algorithm become
    overwrites in reverse priority order: face, edge BC, edge AC, vertex C, edge AB, vertex B,
    vertex A.  ``d3..d6`` (the dot products with ``p - b`` and ``p - c``) are derived from
    ``d1, d2`` and the per-triangle products.  In the face region ``(s, t) = (ap.u, ap.w)`` (the
    plane projection's coordinates) rather than Ericson's ``(vb, vc) / |n|^2``: the latter's error
    grows as ``eps / q^2`` on a sliver of aspect ``q = 2 area / longest_edge^2`` (0.03 x the edge at
    q = 1e-7, larger than the triangle below 1e-8), the dual basis's only as ``eps / q``.
    """
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    d3 = d1 - abab
    d4 = d2 - abac
    d5 = d1 - abac
    d6 = d2 - acac
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    s = apx * ux + apy * uy + apz * uz  # face region
    t = apx * wx + apy * wy + apz * wz
    e1 = d4 - d3
    m = (va <= 0) & (e1 >= 0) & (d5 >= d6)  # edge BC: b + w (c - b)
    w = e1 * ibc
    np.copyto(s, 1.0 - w, where=m)
    np.copyto(t, w, where=m)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge AC
    s[m] = 0.0
    np.copyto(t, d2 * iac, where=m)
    m = (d6 >= 0) & (d5 <= d6)  # vertex C
    s[m] = 0.0
    t[m] = 1.0
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge AB
    np.copyto(s, d1 * iab, where=m)
    t[m] = 0.0
    m = (d3 >= 0) & (d4 <= d3)  # vertex B
    s[m] = 1.0
    t[m] = 0.0
    m = (d1 <= 0) & (d2 <= 0)  # vertex A
    s[m] = 0.0
    t[m] = 0.0
    dx = apx - s * abx - t * acx
    dy = apy - s * aby - t * acy
    dz = apz - s * abz - t * acz
    return dx * dx + dy * dy + dz * dz, s, t


_ROWS = 21  # kernel rows per triangle


def _triangle_rows(a: np.ndarray, ab: np.ndarray, ac: np.ndarray) -> np.ndarray:
    """(21, F) float64 kernel rows: a, ab, ac, |ab|^2, ab.ac, |ac|^2, u, w, 1/|ab|^2, 1/|ac|^2, 1/|bc|^2.

    ``u = (ac x n) / |n|^2`` and ``w = (n x ab) / |n|^2`` with ``n = ab x ac``: ``ap.u`` and ``ap.w``
    are the ``(s, t)`` of the projection of ``p`` onto the triangle's plane.
    """
    tri = np.empty((_ROWS, a.shape[0]))
    tri[0:3] = a.T
    tri[3:6] = ab.T
    tri[6:9] = ac.T
    abab = _sq(ab)
    abac = _dot(ab, ac)
    acac = _sq(ac)
    tri[9], tri[10], tri[11] = abab, abac, acac
    cx = ab[:, 1] * ac[:, 2] - ab[:, 2] * ac[:, 1]
    cy = ab[:, 2] * ac[:, 0] - ab[:, 0] * ac[:, 2]
    cz = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    n = np.stack([cx, cy, cz], axis=1)
    n2 = _sq(n)  # |ab x ac|^2 (= |ab|^2 |ac|^2 - (ab.ac)^2 without its cancellation on thin triangles)
    inv_n2 = np.divide(1.0, n2, out=np.zeros_like(n2), where=n2 > 0)
    tri[12:15] = (np.cross(ac, n) * inv_n2[:, None]).T
    tri[15:18] = (np.cross(n, ab) * inv_n2[:, None]).T
    with np.errstate(divide="ignore"):
        tri[18] = 1.0 / abab
        tri[19] = 1.0 / acac
        tri[20] = 1.0 / (abab - 2.0 * abac + acac)
    return tri


def _collapse_degenerate(tri: np.ndarray, idx: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Rewrite (in place) the kernel rows of degenerate triangles ``idx`` to their longest edge.

    Args:
      tri: ``(21, F) float64`` rows from :func:`_triangle_rows`.
      idx: ``(D,) int`` degenerate triangles; a, b, c: ``(D, 3) float64`` their corners.

    Each becomes the triangle ``(a', b', b')`` with ``a' b'`` the longest edge (length 0 for
    coincident corners), dual basis ``u = w = 0``, ``1/|bc|^2 = 0`` and ``1/|ab|^2 = 1/|ac|^2``
    (0 for a point).  In :func:`_closest_st` the last three overwrites (edge AB, vertex B, vertex A)
    then cover every point: ``d2 = d1``, ``d4 = d3``, ``vc = 0``, so the result is exactly the
    clamped projection onto the segment (the point itself when it has length 0), with ``t = 0``.

    Returns:
      ``(D, 3) int8``: for kernel corners ``(a', b', b')`` the face's own corner (0, 1 or 2).
    """
    cs = np.stack([a, b, c], axis=1)  # (D, 3, 3)
    e = np.stack([_sq(b - a), _sq(c - a), _sq(c - b)], axis=1)  # edges 01, 02, 12
    k = np.argmax(e, axis=1)
    i0 = np.array([0, 0, 1], dtype=np.int8)[k]
    i1 = np.array([1, 2, 2], dtype=np.int8)[k]
    r = np.arange(idx.size)
    p0 = cs[r, i0]
    seg = cs[r, i1] - p0
    length2 = _sq(seg)
    tri[0:3, idx] = p0.T
    tri[3:6, idx] = seg.T
    tri[6:9, idx] = seg.T
    tri[9, idx] = tri[10, idx] = tri[11, idx] = length2
    inv = np.divide(1.0, length2, out=np.zeros_like(length2), where=length2 > 0)
    tri[12:18, idx] = 0.0
    tri[18, idx] = inv
    tri[19, idx] = inv
    tri[20, idx] = 0.0
    return np.stack([i0, i1, i1], axis=1)


def _face_barycentrics(s: np.ndarray, t: np.ndarray, corners: np.ndarray | None, rows: np.ndarray | None) -> np.ndarray:
    """``(M, 3) float64`` barycentrics on the face's own corners from kernel ``(s, t)``.

    ``corners``: ``(D, 3) int8`` from :func:`_collapse_degenerate` for the degenerate ``rows`` of
    the result (None: no degenerate row); their kernel weights are added onto the original corners.
    """
    bary = np.stack([1.0 - s - t, s, t], axis=1)
    if corners is not None and rows.size:
        kb = bary[rows]
        out = np.zeros_like(kb)
        r = np.arange(rows.size)
        for j in range(3):
            out[r, corners[:, j]] += kb[:, j]
        bary[rows] = out
    return bary


_CHUNK = 16384  # pairs per kernel call: keeps the ~40 temporaries in cache


def _pair_eval(tri: np.ndarray, pT: np.ndarray, rows, fid: np.ndarray):
    """Exact ``(sq_dist, s, t)`` for pairs (point ``pT[:, rows]``, triangle ``fid``), chunked.

    ``tri``: (21, F) rows from :func:`_triangle_rows`; ``pT``: (3, N) points;
    ``rows``: (M,) point indices or None for ``rows = arange(M)``.
    """
    m = fid.shape[0]
    d2 = np.empty(m)
    s = np.empty(m)
    t = np.empty(m)
    for lo in range(0, m, _CHUNK):
        hi = min(lo + _CHUNK, m)
        g = tri.take(fid[lo:hi], axis=1)
        pp = pT[:, lo:hi] if rows is None else pT.take(rows[lo:hi], axis=1)
        d2[lo:hi], s[lo:hi], t[lo:hi] = _closest_st(pp[0] - g[0], pp[1] - g[1], pp[2] - g[2], *g[3:])
    return d2, s, t


def closest_points_on_triangles(points, a, b, c):
    """Exact closest point on each triangle ``(a, b, c)`` to each point (row-wise pairs).

    Args:
      points: ``(M, 3) float`` query points.
      a, b, c: ``(M, 3) float`` triangle corners.  A degenerate (zero-area) triangle is measured as
        its longest edge, or as a point when its corners coincide.

    Returns:
      ``(closest (M, 3) float64, barycentrics (M, 3) float64, sq_dist (M,) float64)`` with
      ``closest = u a + v b + w c`` for ``barycentrics = (u, v, w)``.
    """
    p = validate_points(points)
    a = validate_points(a, "a")
    ab = validate_points(b, "b") - a
    ac = validate_points(c, "c") - a
    if not (p.shape == a.shape == ab.shape == ac.shape):
        raise ValueError(f"points, a, b, c must have equal shapes (M, 3), got {p.shape}, {a.shape}, {ab.shape}, {ac.shape}")
    tri = _triangle_rows(a, ab, ac)
    deg = np.flatnonzero(_degenerate_from_edges(ab, ac))
    corners = None
    if deg.size:
        corners = _collapse_degenerate(tri, deg, a[deg], np.asarray(b, dtype=np.float64)[deg], np.asarray(c, dtype=np.float64)[deg])
    d2, s, t = _closest_st(p[:, 0] - tri[0], p[:, 1] - tri[1], p[:, 2] - tri[2], *tri[3:])
    closest = (tri[0:3] + s * tri[3:6] + t * tri[6:9]).T
    return closest, _face_barycentrics(s, t, corners, deg), d2


