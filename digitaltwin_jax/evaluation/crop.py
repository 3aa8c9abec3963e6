"""The crop rule of the evaluation (paper section 4.3: "we discard those vertex v_i where
|v_i - v_t| > d", v_t the centre of both models).

A mesh cropped at radius ``d`` around a centre keeps exactly the triangles whose three vertices all
lie within ``d`` of the centre (``|v - centre| <= d``); its points are the vertices referenced by the
kept triangles.  :data:`CROP_TARGETS` names which meshes an ARMSE evaluation crops
(:mod:`~digitaltwin_jax.evaluation.armse_metric`).
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.evaluation.inputs import mesh_arrays, point3

__all__ = ["CROP_TARGETS", "crop_mesh"]

CROP_TARGETS = ("prediction", "ground_truth", "both", "none")


def crop_mesh(vertices, faces, center, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop a mesh to a ball: keep the triangles whose three vertices are all within ``radius``.

    Args:
      vertices: ``(V, 3) float``; faces: ``(F, 3) int``.
      center: ``(3,) float`` ball centre; radius: ``d`` (> 0, same units).

    Returns:
      ``(faces (F', 3) int64, vertex_mask (V,) bool)``: the kept triangles (still indexing the
      original ``vertices``) and the vertices they reference.

    Raises:
      ValueError: bad shapes/values, or no triangle inside the ball.
    """
    v, f = mesh_arrays(vertices, faces)
    c = point3(center, "center")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number, got {radius}")
    inside = ((v - c) ** 2).sum(1) <= float(radius) ** 2
    kept = f[inside[f].all(axis=1)].astype(np.int64)
    if kept.shape[0] == 0:
        raise ValueError(f"no triangle lies within {radius} of the centre {c.tolist()}")
    mask = np.zeros(v.shape[0], dtype=bool)
    mask[kept.ravel()] = True
    return kept, mask
