"""Fusion of several photos' UV maps into one (issue 16: multi-photo avatars).

Each photo gives a diffuse map and a per-texel confidence (:func:`~.pipeline.build_texture`: the
cosine of the view angle, zero where the texel is hidden, off the photo or masked;
:mod:`.projection`).  A texel's weight in view ``v`` is

    w_v = (c_v * r_v / max_u r_u) ** power

with ``c_v`` the confidence and ``r_v`` the view's resolution (:func:`view_resolution`: photo pixels
per millimetre of face), so a texel comes mostly from the photo that sees it most frontally and most
sharply (``power`` = 4: a view with half the weight-base contributes 1/16), and the far cheek of one
photo comes from another.  Texels no view sees (all ``c_v`` = 0) get the plain mean of the views'
maps there (each view's bank fill, colour-matched to its own photo).  The fused confidence is the
maximum of ``c_v``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["view_resolution", "fuse_textures"]


def view_resolution(vertices_cam, K, vertex_mask=None) -> float:
    """Photo pixels per mm at the face: ``f / median depth`` of the (masked) camera-frame vertices.

    Args:
      vertices_cam: ``(V, 3)`` camera-frame vertices (mm, z > 0).  K: ``(3, 3)`` intrinsics.
      vertex_mask: optional ``(V,) bool`` the vertices to use (e.g. the face).
    """
    v = np.asarray(vertices_cam, np.float64)
    if vertex_mask is not None:
        v = v[np.asarray(vertex_mask, bool)]
    z = v[:, 2]
    z = z[np.isfinite(z) & (z > 0)]
    if z.size == 0:
        raise ValueError("vertices_cam has no vertex in front of the camera")
    k = np.asarray(K, np.float64)
    return float(0.5 * (k[0, 0] + k[1, 1]) / np.median(z))


def fuse_textures(diffuse, confidence, resolution=None, *, power: float = 4.0):
    """Fuse ``V`` views' UV maps.

    Args:
      diffuse: ``(V, S, S, C)`` float maps (any range; uint8 is converted to float).
      confidence: ``(V, S, S)`` in [0, 1].
      resolution: optional ``(V,)`` positive pixels per mm of each view (default all equal).
      power: sharpness of the weighting (module docstring).

    Returns:
      ``(fused (S, S, C) float32, confidence (S, S) float32, best_view (S, S) int32)``; ``best_view``
      is the view of largest weight, -1 where no view sees the texel.
    """
    d = np.asarray(diffuse, np.float32)
    c = np.asarray(confidence, np.float32)
    if d.ndim != 4 or c.shape != d.shape[:3] or d.shape[0] < 1:
        raise ValueError(f"diffuse must be (V, S, S, C) and confidence (V, S, S), got {d.shape} and {c.shape}")
    if not (np.all(np.isfinite(c)) and c.min() >= 0.0):
        raise ValueError("confidence must be finite and >= 0")
    nv = d.shape[0]
    r = np.ones(nv) if resolution is None else np.asarray(resolution, np.float64)
    if r.shape != (nv,) or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"resolution must be ({nv},) positive, got {np.asarray(resolution)}")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    rel = (r / r.max()).astype(np.float32)
    w = (c * rel[:, None, None]) ** np.float32(power)
    total = w.sum(axis=0)
    seen = total > 0
    safe = np.where(seen, total, 1.0)
    fused = np.where(seen[..., None], np.einsum("vij,vijc->ijc", w, d) / safe[..., None], d.mean(axis=0))
    best = np.where(seen, np.argmax(w, axis=0), -1).astype(np.int32)
    return fused.astype(np.float32), c.max(axis=0).astype(np.float32), best
