"""Checks of the evaluation protocol's inputs (paper section 4.3): a 3-vector, the 7 evaluation
landmarks (right eye outer, right eye inner, left eye inner, left eye outer, subnasale, right and left
mouth corners -- ``HeadModel.eval_landmark_indices`` order) and a vertex mask; each names the
argument it rejects."""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.evaluation.distance import validate_points

__all__ = ["point3", "landmarks7", "vertex_mask", "mesh_arrays"]


def point3(x, name: str) -> np.ndarray:
    """``(3,) float64`` finite point."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def landmarks7(x, name: str) -> np.ndarray:
    """``(7, 3) float64`` evaluation landmarks."""
    a = validate_points(x, name)
    if a.shape != (7, 3):
        raise ValueError(
            f"{name} must have shape (7, 3) (eye corners x4, subnasale, mouth corners x2), got {a.shape}"
        )
    return a


def vertex_mask(mask, n: int, name: str) -> np.ndarray:
    """``(n,) bool`` mask selecting at least one vertex (None: all)."""
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"{name} must be a bool array of shape ({n},), got {m.dtype} {m.shape}")
    if not m.any():
        raise ValueError(f"{name} selects no vertex")
    return m


def mesh_arrays(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float64, faces (F, 3) int64)`` with every face index in range (an empty face
    list is allowed; :func:`~digitaltwin_jax.evaluation.distance.validate_mesh` is the strict check
    for distance queries)."""
    v = validate_points(vertices, "vertices")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.dtype} {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"faces index vertices out of range [0, {v.shape[0]})")
    return v, f.astype(np.int64)
