"""UV-space sampling of a mesh: which triangle and barycentrics every texel of a square UV map
belongs to (the first step of texture projection, paper section 3.5), computed with the shared
rasteriser in UV space (screen point = ``(u * size, (1 - v) * size)``, OBJ convention: v up, texel
row 0 at v = 1).  Texels whose centre lies in no UV triangle are outside every chart.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.render.rasterize import rasterize

__all__ = ["UVSampling", "uv_sampling", "texel_interpolate", "scatter_texels"]


@dataclasses.dataclass(frozen=True)
class UVSampling:
    """Covered texels of a ``(size, size)`` UV map.

    Attributes:
      size: the map is ``size x size`` texels.
      texels: ``(N,) int64`` flat indices (``row * size + col``) of the covered texels.
      face: ``(N,) int32`` triangle (row of ``faces`` / ``uv_faces``) containing each texel centre.
      bary: ``(N, 3) float32`` barycentrics of the texel centre in that UV triangle (affine; they
        interpolate any per-corner attribute of the same triangle, e.g. 3-D positions).
      chart_mask: ``(size, size) bool`` covered texels (the union of the UV charts).
    """

    size: int
    texels: np.ndarray
    face: np.ndarray
    bary: np.ndarray
    chart_mask: np.ndarray


def uv_sampling(uvs, uv_faces, size: int) -> UVSampling:
    """Rasterise the UV layout.

    Args:
      uvs: ``(T, 2) float`` OBJ texture coordinates in [0, 1] (v up).
      uv_faces: ``(F, 3) int`` indices into ``uvs``.
      size: texture side in texels.

    Returns:
      :class:`UVSampling`.
    """
    uvs = np.asarray(uvs, dtype=np.float64)
    if uvs.ndim != 2 or uvs.shape[1] != 2:
        raise ValueError(f"uvs must have shape (T, 2), got {uvs.shape}")
    if not np.isfinite(uvs).all():
        raise ValueError("uvs contain non-finite values")
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    pts = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size, np.zeros(len(uvs))], axis=1)
    frags = rasterize(pts, uv_faces, size, size, perspective=False)
    fl = frags.face_id.ravel()
    texels = np.flatnonzero(fl >= 0)
    return UVSampling(
        size=size,
        texels=texels,
        face=fl[texels].astype(np.int32),
        bary=frags.bary.reshape(-1, 3)[texels],
        chart_mask=frags.face_id >= 0,
    )


def texel_interpolate(sampling: UVSampling, attributes, faces) -> np.ndarray:
    """Per-vertex attributes interpolated at the covered texels.

    Args:
      sampling: from :func:`uv_sampling`.
      attributes: ``(V, C)`` or ``(V,)`` per-vertex values (positions, normals, masks).
      faces: ``(F, 3) int`` the mesh faces (same order as the ``uv_faces`` that were rasterised).

    Returns:
      ``(N, C)`` (or ``(N,)``) float32, one row per covered texel.
    """
    a = np.asarray(attributes, dtype=np.float32)
    squeeze = a.ndim == 1
    if squeeze:
        a = a[:, None]
    corners = np.asarray(faces)[sampling.face]  # (N, 3)
    b = sampling.bary
    out = np.take(a, corners[:, 0], axis=0) * b[:, 0:1]
    out += np.take(a, corners[:, 1], axis=0) * b[:, 1:2]
    out += np.take(a, corners[:, 2], axis=0) * b[:, 2:3]
    return out[:, 0] if squeeze else out


def scatter_texels(sampling: UVSampling, values, fill=0.0) -> np.ndarray:
    """Put per-texel values ``(N, ...)`` back into a ``(size, size, ...)`` float32 map (``fill``
    elsewhere)."""
    v = np.asarray(values, dtype=np.float32)
    out = np.full((sampling.size * sampling.size,) + v.shape[1:], fill, dtype=np.float32)
    out[sampling.texels] = v
    return out.reshape((sampling.size, sampling.size) + v.shape[1:])
