"""Cotangent Laplacian, cotangent weights and mass matrices (the c_ij of supplementary eq. 5 and 7),
and the constant normalised Laplacian ``I - W`` of the corrective term (paper eq. 2,
:func:`normalized_laplacian`, scipy).

Sign convention (libigl's ``cotmatrix``): ``L[i, j] = 1/2 (cot a_ij + cot b_ij)`` for an edge (i, j)
with opposite angles a_ij, b_ij, and ``L[i, i] = -sum_j L[i, j]``; L is symmetric negative
semi-definite and ``L @ x`` is (minus) the integrated Laplace-Beltrami operator, ``-M^-1 L`` the
pointwise one.  Obtuse angles give the true (negative) cotangents; nothing is clamped except
degenerate triangles (below).

Degenerate triangles: ``cot = (a . b) / |a x b|`` with the doubled area clamped from below,
``|a x b| >= DEGENERATE_EPS * (|a|^2 + |b|^2)`` (and >= 1e-30), so a zero-area triangle yields
``|cot| <= 1 / (2 DEGENERATE_EPS) = 5e5`` and a triangle with a zero-length edge yields 0 for the
corners next to it: values stay finite, gradients too (the clamp uses the "double where" pattern).

Everything here is pure JAX: jit-able for a fixed topology, vmap-able over vertex batches and
differentiable with respect to ``vertices``.  NaN / inf vertices raise ValueError outside ``jit``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

from digitaltwin_jax.geometry.mesh import check_faces, check_vertices, unique_edges

__all__ = [
    "DEGENERATE_EPS",
    "cotangent_weights",
    "cotangent_edge_weights",
    "cotangent_laplacian",
    "laplacian_apply",
    "vertex_areas",
    "mass_matrix",
    "LAPLACIAN_KINDS",
    "normalized_laplacian",
]

DEGENERATE_EPS = 1e-6
_TINY = 1e-30


def _face_geometry(vertices, faces):
    """Per-face edge components and squared lengths, as lists (XLA CPU vectorises these far better
    than reductions over a trailing axis of size 3).

    Returns ``e[k][c]`` ``(F,)``: component c of edge k, the edge opposite corner k
    (``e_k = v_{k+2} - v_{k+1}``), and ``l2[k]`` ``(F,)`` its squared length.
    """
    comps = [vertices[:, c] for c in range(3)]
    p = [[x[faces[:, k]] for x in comps] for k in range(3)]  # p[k][c]: (F,)
    e = [[p[(k + 2) % 3][c] - p[(k + 1) % 3][c] for c in range(3)] for k in range(3)]
    l2 = [e[k][0] * e[k][0] + e[k][1] * e[k][1] + e[k][2] * e[k][2] for k in range(3)]
    return e, l2


def _double_area(e):
    a, b = e[0], e[1]
    cx = a[1] * b[2] - a[2] * b[1]
    cy = a[2] * b[0] - a[0] * b[2]
    cz = a[0] * b[1] - a[1] * b[0]
    sq = cx * cx + cy * cy + cz * cz
    ok = sq > _TINY
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)


def _cot(e, l2, eps):
    """Cotangents of the three corner angles, a list of ``(F,)`` arrays (degenerate-clamped)."""
    dbl = _double_area(e)
    out = []
    for k in range(3):
        # corner k lies between edges k+1 and k+2; the vectors leaving it are e_{k+2} and -e_{k+1}
        a, b = e[(k + 1) % 3], e[(k + 2) % 3]
        dot = -(a[0] * b[0] + a[1] * b[1] + a[2] * b[2])
        den = jnp.maximum(jnp.maximum(dbl, eps * (l2[(k + 1) % 3] + l2[(k + 2) % 3])), _TINY)
        out.append(dot / den)
    return out


def cotangent_weights(vertices, faces, *, eps: float = DEGENERATE_EPS):
    """Per-face half cotangents: ``w[f, k] = 1/2 cot(angle at corner k)``.

    ``w[f, k]`` is face f's contribution to the weight of the edge opposite corner k, i.e. of
    ``(faces[f, (k+1)%3], faces[f, (k+2)%3])``; summing both faces of an edge gives ``L[i, j]``.

    Args:
      vertices: ``(V, 3) float``.
      faces: ``(F, 3) int``.
      eps: degenerate-triangle clamp (module docstring).

    Returns:
      ``(F, 3)`` float, same dtype as ``vertices``; negative for obtuse angles.
    """
    v = check_vertices(vertices)
    f = check_faces(faces, v.shape[0])
    e, l2 = _face_geometry(v, jnp.asarray(f))
    return 0.5 * jnp.stack(_cot(e, l2, eps), axis=1)


def cotangent_edge_weights(vertices, faces, *, eps: float = DEGENERATE_EPS):
    """Cotangent weight of every undirected edge, ``L[i, j]`` as a list.

    Args:
      vertices: ``(V, 3) float`` (may be traced).
      faces: ``(F, 3) int``, concrete (numpy): the edge list is topology.

    Returns:
      ``(edges (E, 2) int32 with i < j, weights (E,) float)``, ``weights = 1/2 (cot a + cot b)``
      (one term on boundary edges).
    """
    f = check_faces(faces)
    edges = unique_edges(f)
    w = cotangent_weights(vertices, f, eps=eps)
    # map every (face, corner) to its opposite edge's row in `edges`
    opp = np.stack([f[:, [1, 2]], f[:, [2, 0]], f[:, [0, 1]]], axis=1).reshape(-1, 2)
    opp.sort(axis=1)
    key = opp[:, 0].astype(np.int64) * (int(f.max()) + 1) + opp[:, 1]
    ekey = edges[:, 0] * (int(f.max()) + 1) + edges[:, 1]
    row = np.searchsorted(ekey, key)
    weights = jax.ops.segment_sum(w.reshape(-1), jnp.asarray(row), num_segments=edges.shape[0])
    return edges.astype(np.int32), weights


def cotangent_laplacian(vertices, faces, *, eps: float = DEGENERATE_EPS) -> jsparse.BCOO:
    """The cotangent Laplacian as a ``(V, V)`` BCOO matrix (libigl ``cotmatrix`` convention).

    The matrix holds ``9 F`` stored entries with duplicates (6 off-diagonal and 3 diagonal entries
    per face), which every BCOO operation sums implicitly; call ``.sum_duplicates()`` for a
    canonical matrix (slow: it sorts).  This layout needs no scatter, so the build is a handful of
    vectorised passes over the faces.

    Args:
      vertices: ``(V, 3) float``.
      faces: ``(F, 3) int`` (may be traced; the sparsity pattern is ``9 F`` entries in any case).
      eps: degenerate-triangle clamp (module docstring).

    Returns:
      ``BCOO`` ``(V, V)``, dtype of ``vertices``: symmetric, rows sum to zero, negative
      semi-definite.
    """
    v = check_vertices(vertices)
    f = jnp.asarray(check_faces(faces, v.shape[0]))
    e, l2 = _face_geometry(v, f)
    w = [0.5 * c for c in _cot(e, l2, eps)]  # w[k]: (F,) weight of the edge opposite corner k
    fk = [f[:, k] for k in range(3)]
    # edge opposite corner k joins corners k+1 and k+2; corner k's vertex gets -(w_{k+1} + w_{k+2})
    rows = [fk[(k + 1) % 3] for k in range(3)] + [fk[(k + 2) % 3] for k in range(3)] + fk
    cols = [fk[(k + 2) % 3] for k in range(3)] + [fk[(k + 1) % 3] for k in range(3)] + fk
    data = w + w + [-(w[(k + 1) % 3] + w[(k + 2) % 3]) for k in range(3)]
    rows, cols, data = jnp.concatenate(rows), jnp.concatenate(cols), jnp.concatenate(data)
    n = v.shape[0]
    return jsparse.BCOO((data, jnp.stack([rows, cols], axis=1)), shape=(n, n))


def laplacian_apply(vertices, faces, x, *, eps: float = DEGENERATE_EPS):
    """Matrix-free ``L @ x`` with L the cotangent Laplacian of ``(vertices, faces)``.

    Args:
      vertices: ``(V, 3) float`` (L's geometry; differentiable).
      faces: ``(F, 3) int``.
      x: ``(V,)`` or ``(V, C)`` float (differentiable).

    Returns:
      ``(V,)`` or ``(V, C)``: ``(L x)_i = sum_j L_ij (x_j - x_i)``.
    """
    v = check_vertices(vertices)
    f = jnp.asarray(check_faces(faces, v.shape[0]))
    x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[0] != v.shape[0]:
        raise ValueError(f"x must have shape (V,) or (V, C) with V = {v.shape[0]}, got {x.shape}")
    e, l2 = _face_geometry(v, f)
    w = jnp.concatenate([0.5 * c for c in _cot(e, l2, eps)])  # (3F,)
    a = jnp.concatenate([f[:, (k + 1) % 3] for k in range(3)])
    b = jnp.concatenate([f[:, (k + 2) % 3] for k in range(3)])
    d = x[b] - x[a]
    wd = w * d if x.ndim == 1 else w[:, None] * d
    idx = jnp.concatenate([a, b])
    return jax.ops.segment_sum(jnp.concatenate([wd, -wd]), idx, num_segments=v.shape[0])


def vertex_areas(vertices, faces, *, kind: str = "voronoi", eps: float = DEGENERATE_EPS):
    """Lumped mass per vertex ``(V,)`` (the diagonal of :func:`mass_matrix`).

    Args:
      vertices: ``(V, 3) float``.
      faces: ``(F, 3) int``.
      kind: ``"barycentric"`` (a third of each incident triangle's area) or ``"voronoi"`` (Meyer et
        al. 2003 mixed Voronoi areas, libigl's ``MASSMATRIX_TYPE_VORONOI``: the Voronoi region for
        non-obtuse triangles, half / a quarter of the area at an obtuse triangle's obtuse / other
        corners).

    Returns:
      ``(V,)`` float, summing to the total surface area.
    """
    if kind not in ("voronoi", "barycentric"):
        raise ValueError(f"kind must be 'voronoi' or 'barycentric', got {kind!r}")
    v = check_vertices(vertices)
    f = jnp.asarray(check_faces(faces, v.shape[0]))
    e, l2 = _face_geometry(v, f)
    area = 0.5 * _double_area(e)[:, None]  # (F, 1)
    if kind == "barycentric":
        per_corner = jnp.repeat(area / 3.0, 3, axis=1)
    else:
        cot = _cot(e, l2, eps)
        lc = [l2[k] * cot[k] for k in range(3)]
        area = area[:, 0]
        cols = []
        for k in range(3):
            k1, k2 = (k + 1) % 3, (k + 2) % 3
            # corner k touches edges k+1 and k+2; the Voronoi part of edge j is |e_j|^2 cot_j / 8
            vor = (lc[k1] + lc[k2]) / 8.0
            obtuse_k = l2[k] > l2[k1] + l2[k2]
            any_obtuse = (l2[0] > l2[1] + l2[2]) | (l2[1] > l2[2] + l2[0]) | (l2[2] > l2[0] + l2[1])
            cols.append(jnp.where(any_obtuse, jnp.where(obtuse_k, area / 2.0, area / 4.0), vor))
        per_corner = jnp.stack(cols, axis=1)
    return jnp.zeros(v.shape[0], per_corner.dtype).at[f.reshape(-1)].add(per_corner.reshape(-1))


def mass_matrix(vertices, faces, *, kind: str = "voronoi", eps: float = DEGENERATE_EPS) -> jsparse.BCOO:
    """Diagonal lumped mass matrix ``(V, V)`` as BCOO (see :func:`vertex_areas` for ``kind``)."""
    m = vertex_areas(vertices, faces, kind=kind, eps=eps)
    idx = jnp.arange(m.shape[0])
    return jsparse.BCOO((m, jnp.stack([idx, idx], axis=1)), shape=(m.shape[0], m.shape[0]))


# ------------------------------------------------------------ the normalised (constant) Laplacian

LAPLACIAN_KINDS = ("uniform", "cotangent")


def normalized_laplacian(vertices, faces, kind: str = "uniform") -> sp.csr_matrix:
    """Constant ``(V, V)`` Laplacian ``L = I - W`` (rows of W sum to 1), scipy CSR float64.

    Args:
      vertices: ``(V, 3)`` the neutral mesh (only used for ``kind="cotangent"``).
      faces: ``(F, 3) int``; every vertex must belong to a face.
      kind: ``"uniform"`` (W = D^{-1} A of the edge graph) or ``"cotangent"`` (W = normalised
        cotangent weights of the mesh, :func:`cotangent_weights` in float64 with each corner's
        negative half cotangent clamped to 0).

    ``(L p)_i = p_i - sum_j W_ij p_j`` is the Laplacian coordinate of vertex i (Sorkine et al. 2004;
    the corrective term of paper eq. 2).

    Raises:
      ValueError: unknown ``kind``, bad faces, or a vertex without neighbours (zero row weight).
    """
    if kind not in LAPLACIAN_KINDS:
        raise ValueError(f"kind must be one of {LAPLACIAN_KINDS}, got {kind!r}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {f.shape}")
    n = v.shape[0]
    if kind == "uniform":
        e = unique_edges(f)
        rows, cols, w = np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]], np.ones(2 * len(e))
    else:
        with jax.enable_x64(True):
            half_cot = np.maximum(np.asarray(cotangent_weights(v, f)), 0.0)  # (F, 3), corner k -> edge (k+1, k+2)
        i, j = f[:, [1, 2, 0]].T.ravel(), f[:, [2, 0, 1]].T.ravel()
        w_k = half_cot.T.ravel()
        rows, cols, w = np.r_[i, j], np.r_[j, i], np.r_[w_k, w_k]
    W = sp.coo_matrix((w, (rows, cols)), shape=(n, n)).tocsr()
    s = np.asarray(W.sum(axis=1)).ravel()
    if np.any(s <= 0):
        bad = np.flatnonzero(s <= 0)[:5]
        raise ValueError(f"vertices without neighbours (or zero weights) in the Laplacian, e.g. {bad.tolist()}")
    return (sp.eye(n, format="csr") - sp.diags(1.0 / s) @ W).tocsr()
