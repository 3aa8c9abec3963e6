"""UV atlas packing: ICT's two UDIM tiles -> one square texture (the paper's single 2048x2048 map).

ICT lays the face out in UDIM tile 0 (u in [0, 1]) and the head-and-neck in tile 1 (u in [1, 2]).
The paper's avatar has one diffuse map, so the converter packs both into [0, 1]^2:

* the whole tile 0 (the face charts, whose outer ring fills the tile) is scaled uniformly by
  ``face_scale`` (0.7: 1434 px of a 2048 map) into the top-left corner;
* every chart of the other tiles (back of head, neck, ear pieces), largest first, is scaled
  uniformly and placed by a guillotine packer into the free L-shaped band, each at the largest scale
  that fits (capped at ``face_scale``, so no chart gets more texels per mm than the face), with a
  ``margin`` between charts for mip/dilation padding.

Each chart is moved by a similarity (scale + translation), so the UV parametrisation is never
distorted; only texel density differs between charts.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["uv_charts", "pack_udim_atlas"]


def uv_charts(uv_faces: np.ndarray, num_uvs: int) -> np.ndarray:
    """Chart label ``(T,) int`` of every uv (connected components of the UV triangle graph)."""
    f = np.asarray(uv_faces, dtype=np.int64)
    r = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    c = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    g = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(num_uvs, num_uvs))
    return connected_components(g, directed=False)[1]


def pack_udim_atlas(uvs, uv_faces, *, face_scale: float = 0.7, margin: float = 0.004) -> np.ndarray:
    """Repack UDIM tiles into the unit square.

    Args:
      uvs: ``(T, 2) float`` UDIM coordinates (tile k spans u in [k, k + 1]).
      uv_faces: ``(F, 3) int`` uv triangles.
      face_scale: scale of tile 0.
      margin: gap between charts, in units of the atlas.

    Returns:
      ``(T, 2) float64`` coordinates in [0, 1].
    """
    uvs = np.asarray(uvs, dtype=np.float64)
    out = uvs.copy()
    labels = uv_charts(uv_faces, len(uvs))
    tile = np.floor(uvs[:, 0]).astype(int)
    charts = {}
    for k in np.unique(labels):
        sel = labels == k
        t = np.bincount(tile[sel]).argmax()
        charts[k] = (sel, t)
    # tile 0 -> top-left square
    for k, (sel, t) in charts.items():
        if t == 0:
            out[sel] = np.array([0.0, 1.0 - face_scale]) + face_scale * uvs[sel]
    # free rectangles (x0, y0, w, h): right band and bottom band
    s = face_scale + margin
    free = [(s, 1.0 - face_scale, 1.0 - s, face_scale), (0.0, 0.0, 1.0, 1.0 - s)]
    others = [(k, sel) for k, (sel, t) in charts.items() if t != 0]
    others.sort(key=lambda ks: -np.prod(np.ptp(uvs[ks[1]], axis=0)))
    for k, sel in others:
        lo = uvs[sel].min(axis=0)
        size = np.ptp(uvs[sel], axis=0) + 1e-9
        best = None
        for i, (x0, y0, w, h) in enumerate(free):
            sc = min((w - margin) / size[0], (h - margin) / size[1], face_scale)
            if sc > 0 and (best is None or sc > best[0]):
                best = (sc, i)
        if best is None:
            raise ValueError("UV atlas packing failed: no room left for a chart")
        sc, i = best
        x0, y0, w, h = free.pop(i)
        cw, ch = size * sc + margin
        out[sel] = np.array([x0, y0]) + (uvs[sel] - lo) * sc
        # guillotine split: the part right of the chart, and the part above it
        if w - cw > margin:
            free.append((x0 + cw, y0, w - cw, h))
        if h - ch > margin:
            free.append((x0, y0 + ch, cw, h - ch))
    return np.clip(out, 0.0, 1.0)
