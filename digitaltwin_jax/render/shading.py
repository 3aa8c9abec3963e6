"""Shading helpers for the CPU renderer: vertex normals, bilinear UV texture lookup, Lambert and
Blinn-Phong terms (used for previews and by the synthetic-image engine, paper section 3.2).

Images are float32 HWC in [0, 1].  UVs follow the OBJ convention: ``u`` to the right, ``v`` *up*, both
in [0, 1]; texel ``(row, col)`` of an ``(Ht, Wt)`` texture covers ``u in [col, col + 1] / Wt`` and
``v in [Ht - row - 1, Ht - row] / Ht``, i.e. ``row = (1 - v) * Ht`` (the bottom image row is v = 0).
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.geometry.mesh import face_normals_np, vertex_normals_np

__all__ = ["vertex_normals", "face_normals", "sample_texture", "bilinear", "uv_to_pixel", "lambert", "blinn_phong"]


def face_normals(vertices, faces, *, normalize: bool = True) -> np.ndarray:
    """``(F, 3) float32`` face normals ``(v1 - v0) x (v2 - v0)`` (outward for counter-clockwise faces).

    With ``normalize=False`` the length is twice the triangle area.  Computed by
    :func:`digitaltwin_jax.geometry.mesh.face_normals_np` (float64) after checking the shapes.
    """
    v, f = _check_mesh(vertices, faces)
    return face_normals_np(v, f, normalize=normalize).astype(np.float32)


def vertex_normals(vertices, faces) -> np.ndarray:
    """Area-weighted unit vertex normals (:func:`digitaltwin_jax.geometry.mesh.vertex_normals_np`).

    Args:
      vertices: ``(V, 3) float`` positions.
      faces: ``(F, 3) int`` counter-clockwise seen from outside.

    Returns:
      ``(V, 3) float32`` unit normals (the sum of the incident faces' area vectors, normalised);
      ``(0, 0, 0)`` for vertices in no face or only in degenerate faces.
    """
    v, f = _check_mesh(vertices, faces)
    return vertex_normals_np(v, f).astype(np.float32)


def _check_mesh(vertices, faces):
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {f.shape}")
    return v, f


def uv_to_pixel(uv, height: int, width: int) -> np.ndarray:
    """OBJ UVs ``(..., 2)`` to continuous texture pixel coordinates ``(..., 2)`` = ``(x, y)``.

    ``x = u * width``, ``y = (1 - v) * height`` (origin at the top-left corner of the texture).
    """
    uv = np.asarray(uv, dtype=np.float32)
    return np.stack([uv[..., 0] * width, (1.0 - uv[..., 1]) * height], axis=-1)


def sample_texture(texture, uv) -> np.ndarray:
    """Bilinear texture lookup with clamp-to-edge.

    Args:
      texture: ``(Ht, Wt, C)`` or ``(Ht, Wt)`` float (uint8 is converted to [0, 1]).
      uv: ``(..., 2)`` OBJ texture coordinates (v up).

    Returns:
      ``(..., C)`` float32 (``(...)`` for a 2-D texture).
    """
    tex = np.asarray(texture)
    if tex.dtype == np.uint8:
        tex = tex.astype(np.float32) / 255.0
    if tex.ndim not in (2, 3):
        raise ValueError(f"texture must be (H, W) or (H, W, C), got {tex.shape}")
    uv = np.asarray(uv, dtype=np.float32)
    if uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (..., 2), got {uv.shape}")
    h, w = tex.shape[:2]
    p = uv_to_pixel(uv, h, w) - 0.5  # texel centres at integer + 0.5
    return bilinear(tex, p[..., 0], p[..., 1])


def bilinear(image, x, y) -> np.ndarray:
    """Bilinear lookup of ``image`` ``(H, W[, C])`` at continuous *index* coordinates (``x`` = column
    index, ``y`` = row index, pixel centres at integers), clamped to the border; float32 result."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    flat = img.reshape(h * w, -1)
    x = np.clip(np.asarray(x, np.float32), 0.0, w - 1.0)
    y = np.clip(np.asarray(y, np.float32), 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.int32), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int32), max(h - 2, 0))
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    i00 = y0 * w + x0
    a = np.take(flat, i00, axis=0).astype(np.float32, copy=False)
    b = np.take(flat, i00 + dx, axis=0).astype(np.float32, copy=False)
    c = np.take(flat, i00 + dy, axis=0).astype(np.float32, copy=False)
    d = np.take(flat, i00 + dy + dx, axis=0).astype(np.float32, copy=False)
    b -= a
    b *= fx
    a += b  # top row
    d -= c
    d *= fx
    c += d  # bottom row
    c -= a
    c *= fy
    a += c
    out = a
    return out[..., 0] if img.ndim == 2 else out


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n == 0) or not np.isfinite(n).all():
        raise ValueError(f"direction must be non-zero and finite, got {v}")
    return v / n


def lambert(normals, light_dir) -> np.ndarray:
    """Lambert cosine ``max(0, n . l)`` for unit normals ``(..., 3)`` and a direction toward the light
    ``(3,)`` (normalised inside); ``(...)`` float32."""
    return np.maximum(np.asarray(normals, np.float32) @ _unit(light_dir), 0.0)


def blinn_phong(normals, light_dir, view_dirs, shininess: float) -> np.ndarray:
    """Blinn-Phong specular ``max(0, n . h)^shininess`` with ``h = normalize(l + v)``.

    Args:
      normals: ``(..., 3)`` unit normals.
      light_dir: ``(3,)`` direction toward the light.
      view_dirs: ``(..., 3)`` unit directions from the surface toward the eye.
      shininess: Phong exponent (> 0).

    Returns:
      ``(...)`` float32; zero where the surface faces away from the light.
    """
    n = np.asarray(normals, np.float32)
    light = _unit(light_dir)
    hv = np.asarray(view_dirs, np.float32) + light
    hv /= np.maximum(np.linalg.norm(hv, axis=-1, keepdims=True), 1e-12)
    ndh = np.maximum(np.einsum("...k,...k->...", n, hv), 0.0)
    spec = ndh ** np.float32(shininess)
    return np.where(n @ light > 0, spec, 0.0).astype(np.float32)
