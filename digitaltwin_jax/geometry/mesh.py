"""Mesh helpers shared by the geometry core: validation, edges, one-rings, normals, flips.

Support for the paper's section 3.2 (DR features, supplementary eq. 5-8) and the cotangent
Laplacian.  Conventions: ``vertices (V, 3) float``, ``faces (F, 3) int`` counter-clockwise seen
from outside.  Topology helpers (edges, one-rings) are numpy functions of a concrete ``faces`` array
(topology is static under ``jit``); geometric helpers are pure JAX (jit / vmap / grad friendly).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_vertices",
    "check_faces",
    "is_concrete",
    "unique_edges",
    "one_ring",
    "vertex_faces",
    "face_normals",
    "vertex_normals",
    "face_normals_np",
    "vertex_normals_np",
    "flipped_faces",
    "bounding_box_diagonal",
]


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer inside ``jit`` / ``vmap`` / ``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def check_vertices(vertices, name: str = "vertices", *, batch: bool = False):
    """Validate a ``(V, 3)`` (or ``(..., V, 3)`` with ``batch``) float array; returns it as a jax array.

    Raises ValueError on a wrong shape, and on NaN / inf values when the array is concrete (outside
    ``jit``); inside ``jit`` values cannot be inspected, so only the shape is checked.
    """
    if not hasattr(vertices, "shape"):
        vertices = np.asarray(vertices)
    shape = tuple(vertices.shape)
    if len(shape) < 2 or shape[-1] != 3 or (not batch and len(shape) != 2):
        want = "(..., V, 3)" if batch else "(V, 3)"
        raise ValueError(f"{name} must have shape {want}, got {shape}")
    if not (jnp.issubdtype(vertices.dtype, jnp.floating) or jnp.issubdtype(vertices.dtype, jnp.integer)):
        raise TypeError(f"{name} must be a float array, got dtype {vertices.dtype}")
    if is_concrete(vertices):
        a = np.asarray(vertices)
        if not np.all(np.isfinite(a)):
            bad = int(np.count_nonzero(~np.isfinite(a).all(axis=-1)))
            raise ValueError(f"{name} contains NaN or inf ({bad} non-finite points)")
    return jnp.asarray(vertices) if not jnp.issubdtype(vertices.dtype, jnp.integer) else jnp.asarray(
        vertices, jnp.float32
    )


def check_faces(faces, num_vertices: int | None = None):
    """Validate ``faces (F, 3)`` integer indices; returns them (numpy if concrete, else as given)."""
    if not hasattr(faces, "shape"):
        faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if not jnp.issubdtype(faces.dtype, jnp.integer):
        raise TypeError(f"faces must be an integer array, got dtype {faces.dtype}")
    if faces.shape[0] == 0:
        raise ValueError("faces is empty")
    if is_concrete(faces):
        f = np.asarray(faces)
        if f.min() < 0 or (num_vertices is not None and f.max() >= num_vertices):
            raise ValueError(
                f"faces index out of range: min {f.min()}, max {f.max()}, num_vertices {num_vertices}"
            )
        return f
    return faces


def _concrete_faces(faces, what: str) -> np.ndarray:
    if not is_concrete(faces):
        raise TypeError(
            f"{what} needs a concrete faces array (topology is static); pass numpy faces, not a traced value"
        )
    return np.asarray(faces)


def unique_edges(faces) -> np.ndarray:
    """Unique undirected edges ``(E, 2) int64`` with ``e[:, 0] < e[:, 1]``, sorted (numpy; concrete faces)."""
    f = _concrete_faces(check_faces(faces), "unique_edges").astype(np.int64)
    e = np.concatenate([f[:, [1, 2]], f[:, [2, 0]], f[:, [0, 1]]])
    e.sort(axis=1)
    return np.unique(e, axis=0)


def one_ring(faces, num_vertices: int):
    """Padded one-ring neighbour lists (ELL layout) of a triangle mesh (numpy; concrete faces).

    Returns:
      neighbors: ``(V, K) int32``, K = max valence; padded entries point at the vertex itself.
      mask: ``(V, K) bool``, True for real neighbours.
    """
    e = unique_edges(faces)
    src = np.concatenate([e[:, 0], e[:, 1]])
    dst = np.concatenate([e[:, 1], e[:, 0]])
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    counts = np.bincount(src, minlength=num_vertices)
    k = max(int(counts.max()), 1)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(src.size) - start[src]
    nbr = np.repeat(np.arange(num_vertices, dtype=np.int32)[:, None], k, axis=1)
    mask = np.zeros((num_vertices, k), dtype=bool)
    nbr[src, slot] = dst
    mask[src, slot] = True
    return nbr, mask


def face_normals(vertices, faces, *, normalize: bool = True):
    """Face normals ``(F, 3)`` (unit, or with ``normalize=False`` the cross product = 2 x area x normal).

    Zero-area faces give a zero normal (no NaN, finite gradient).
    """
    v = jnp.asarray(vertices)
    tri = v[jnp.asarray(faces)]
    n = jnp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if not normalize:
        return n
    return _safe_unit(n)


def _safe_unit(n, tiny: float = 1e-30):
    sq = jnp.sum(n * n, axis=-1, keepdims=True)
    ok = sq > tiny
    inv = jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, sq, 1.0)), 0.0)
    return n * inv


def vertex_normals(vertices, faces, *, normalize: bool = True):
    """Area-weighted vertex normals ``(V, 3)``: sum of the incident faces' cross products (unit if asked)."""
    v = jnp.asarray(vertices)
    fn = face_normals(v, faces, normalize=False)
    f = jnp.asarray(faces)
    n = jnp.zeros_like(v).at[f.reshape(-1)].add(jnp.repeat(fn, 3, axis=0))
    return _safe_unit(n) if normalize else n


def face_normals_np(vertices, faces, *, normalize: bool = True) -> np.ndarray:
    """numpy :func:`face_normals`: ``(F, 3) float64`` ``(v1 - v0) x (v2 - v0)`` (length 2 x area),
    unit with ``normalize`` (zero-area faces: zero).  The one numpy implementation; the renderer,
    the evaluation and the asset build call it."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if not normalize:
        return n
    ln = np.sqrt(np.sum(n * n, axis=1, keepdims=True))
    return n / np.where(ln > 0, ln, 1.0)


def vertex_normals_np(vertices, faces, *, normalize: bool = True) -> np.ndarray:
    """numpy :func:`vertex_normals`: ``(V, 3) float64`` sums of the incident faces' area vectors,
    unit with ``normalize`` (zero for vertices in no face or only in zero-area faces)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    fn = face_normals_np(v, f, normalize=False)
    idx = f.ravel()
    n = np.stack([np.bincount(idx, weights=np.repeat(fn[:, c], 3), minlength=v.shape[0]) for c in range(3)], axis=1)
    if not normalize:
        return n
    ln = np.sqrt(np.sum(n * n, axis=1, keepdims=True))
    return n / np.where(ln > 0, ln, 1.0)


def flipped_faces(vertices, reference_vertices, faces):
    """``(F,) bool``: faces whose normal points against the reference face's normal (or collapsed)."""
    n = face_normals(vertices, faces, normalize=False)
    nr = face_normals(reference_vertices, faces, normalize=False)
    return jnp.sum(n * nr, axis=-1) <= 0.0


def bounding_box_diagonal(vertices) -> jax.Array:
    """Length of the axis-aligned bounding-box diagonal of ``(..., V, 3)`` points."""
    v = jnp.asarray(vertices)
    return jnp.linalg.norm(v.max(axis=-2) - v.min(axis=-2), axis=-1)


def vertex_faces(faces, num_vertices: int):
    """Padded vertex -> incident faces lists (numpy; concrete faces).

    Returns:
      vf: ``(V, Kf) int32`` face indices (padding repeats face 0); mask: ``(V, Kf) bool``.
    """
    f = _concrete_faces(check_faces(faces, num_vertices), "vertex_faces").astype(np.int64)
    vid = f.reshape(-1)
    fid = np.repeat(np.arange(f.shape[0]), 3)
    order = np.argsort(vid, kind="stable")
    vid, fid = vid[order], fid[order]
    counts = np.bincount(vid, minlength=num_vertices)
    k = max(int(counts.max()), 1)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(vid.size) - start[vid]
    vf = np.zeros((num_vertices, k), dtype=np.int32)
    mask = np.zeros((num_vertices, k), dtype=bool)
    vf[vid, slot] = fid
    mask[vid, slot] = True
    return vf, mask
