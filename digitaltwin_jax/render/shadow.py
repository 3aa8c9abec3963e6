"""Shadow maps for directional lights (cast shadows in the synthetic renders, paper section 3.2).

A directional light shining along ``-light_dir`` (``light_dir`` points *toward* the light, as in
:mod:`digitaltwin_jax.render.shading`) sees the scene through an orthographic camera.  Its frame is
the orthonormal basis ``(e1, e2, e3)`` with ``e3 = -light_dir`` (depth grows away from the light).
:func:`shadow_map` rasterises the occluders' depth ``p . e3`` in that frame with the shared rasteriser
(:func:`digitaltwin_jax.geometry.rasterize.rasterize`, ``perspective=False``); :func:`shadow_visibility` then
compares a point's depth with the stored nearest depth: the point is lit when
``p . e3 <= depth_map(p) + bias`` (optionally plus a slope-scaled term for surfaces grazing the
light, and with the lookup point pushed along its normal: the usual cures for shadow "acne").
Soft shadows (percentage-closer filtering): the comparison is averaged over taps on a disc of
``radius`` texels (a Vogel spiral rotated per point so banding becomes fine noise); ``radius = 0``
uses the bilinear 2x2 PCF of the four nearest texels.

Units are the scene's (mm for heads); texel coordinates follow the rasteriser (x = column, y = row,
texel centres at ``+0.5``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.geometry.rasterize import rasterize

__all__ = ["ShadowMap", "light_basis", "shadow_map", "light_coordinates", "shadow_visibility"]


@dataclasses.dataclass(frozen=True)
class ShadowMap:
    """Depth of the nearest occluder seen from a directional light.

    Attributes:
      basis: ``(3, 3) float64`` rows ``e1, e2, e3``; ``e3`` is the direction the light travels.
      origin: ``(2,) float64`` light-frame ``(e1, e2)`` coordinates of the map's top-left corner.
      scale: texels per scene unit.
      depth: ``(S, S) float32`` nearest ``p . e3`` per texel, ``inf`` where nothing is drawn.
    """

    basis: np.ndarray
    origin: np.ndarray
    scale: float
    depth: np.ndarray

    @property
    def size(self) -> int:
        return int(self.depth.shape[0])


def light_basis(light_dir) -> np.ndarray:
    """``(3, 3) float64`` orthonormal rows ``e1, e2, e3`` with ``e3 = -normalize(light_dir)``."""
    d = np.asarray(light_dir, dtype=np.float64)
    if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) == 0:
        raise ValueError(f"light_dir must be a non-zero finite (3,) vector, got {light_dir}")
    e3 = -d / np.linalg.norm(d)
    helper = np.array([0.0, 1.0, 0.0]) if abs(e3[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, e3)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3])


def shadow_map(vertices, faces, light_dir, *, size: int = 256, margin: float = 0.02,
               extent=None, cull_backfaces: bool = False) -> ShadowMap:
    """Rasterise the occluders' depth as seen from a directional light.

    Args:
      vertices: ``(V, 3) float`` occluder positions (any frame; the lookups must use the same frame).
      faces: ``(F, 3) int`` triangles (both windings occlude).
      light_dir: ``(3,)`` direction toward the light.
      size: the map is ``size x size`` texels.
      margin: fraction of the extent added on each side of the bounding square.
      extent: optional ``((x0, y0), side)`` light-frame square to cover instead of the vertices' bounds.
      cull_backfaces: draw only faces turned toward the light (counter-clockwise seen from outside).
        For closed surfaces the nearest occluder always faces the light, so this halves the work
        without changing the map; leave it off for open or one-sided geometry.

    Returns:
      :class:`ShadowMap`.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain non-finite values")
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    basis = light_basis(light_dir)
    p = v @ basis.T
    if extent is None:
        lo = p[:, :2].min(axis=0)
        hi = p[:, :2].max(axis=0)
        side = float((hi - lo).max())
        side = max(side, 1e-9) * (1.0 + 2.0 * margin)
        origin = (lo + hi) / 2.0 - side / 2.0
    else:
        origin, side = np.asarray(extent[0], np.float64), float(extent[1])
    scale = size / side
    pts = np.empty_like(p)
    pts[:, :2] = (p[:, :2] - origin) * scale
    pts[:, 2] = p[:, 2]
    # (e1, e2, e3) is right-handed like the OpenCV camera, so the rasteriser's culling convention holds
    frags = rasterize(pts, faces, size, size, perspective=False, cull_backfaces=cull_backfaces)
    return ShadowMap(basis=basis, origin=np.asarray(origin, np.float64), scale=float(scale),
                     depth=frags.depth)


def light_coordinates(smap: ShadowMap, points) -> np.ndarray:
    """``(N, 3) float64`` ``[x texel, y texel, depth]`` of scene points ``(N, 3)`` in the map."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    q = p @ smap.basis.T
    q[:, :2] = (q[:, :2] - smap.origin) * smap.scale
    return q


# Vogel (golden-angle) spiral on the unit disc.
def _vogel(n):
    k = np.arange(n) + 0.5
    r = np.sqrt(k / n)
    a = k * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def shadow_visibility(smap: ShadowMap, points, *, bias: float = 1.0, radius: float = 0.0,
                      taps: int = 12, normals=None, normal_offset: float = 0.0,
                      slope_bias: float = 0.0) -> np.ndarray:
    """Fraction of the light reaching each point (1 lit, 0 in shadow).

    Args:
      smap: from :func:`shadow_map`.
      points: ``(N, 3) float`` points to test, same frame as the map's vertices.
      bias: depth tolerance in scene units (avoids self-shadowing "acne").
      radius: PCF radius in texels; 0 gives bilinear 2x2 PCF.
      taps: PCF taps when ``radius > 0``.
      normals: optional ``(N, 3)`` unit normals; with ``normal_offset`` (in texels) the lookup point is
        pushed along the normal, the usual fix for acne on surfaces grazing the light.
      normal_offset: see ``normals``.
      slope_bias: extra depth tolerance ``(slope_bias + radius) * texel * tan(angle(n, l))`` (tan
        capped at 10) for surfaces grazing the light, whose depth changes fast across the texels the
        taps read; needs ``normals``.

    Returns:
      ``(N,) float32`` in [0, 1]; points outside the map are lit.
    """
    p = np.asarray(points, dtype=np.float64)
    if normals is not None and normal_offset:
        n = np.asarray(normals, dtype=np.float64)
        if n.shape != p.shape:
            raise ValueError(f"normals must have the shape of points {p.shape}, got {n.shape}")
        p = p + n * (normal_offset / smap.scale)
    q = light_coordinates(smap, p).astype(np.float32)
    s = smap.size
    depth = smap.depth
    zq = q[:, 2] - np.float32(bias)
    if normals is not None and slope_bias:
        cos = np.clip(-(np.asarray(normals, np.float32) @ smap.basis[2].astype(np.float32)), 0.1, 1.0)
        tan = np.sqrt(1.0 - cos * cos) / cos
        zq = zq - np.float32((slope_bias + max(radius, 0.0)) / smap.scale) * np.minimum(tan, 10.0)

    def lit_at(x, y):
        ix = np.floor(x).astype(np.int32)
        iy = np.floor(y).astype(np.int32)
        inside = (ix >= 0) & (ix < s) & (iy >= 0) & (iy < s)
        d = depth[np.clip(iy, 0, s - 1), np.clip(ix, 0, s - 1)]
        return ~inside | (zq <= d)

    x, y = q[:, 0], q[:, 1]
    if radius <= 0:
        # Bilinear PCF: weights of the four texel centres around the point.
        xc, yc = x - 0.5, y - 0.5
        x0, y0 = np.floor(xc), np.floor(yc)
        fx, fy = xc - x0, yc - y0
        l00 = lit_at(x0 + 0.5, y0 + 0.5)
        l10 = lit_at(x0 + 1.5, y0 + 0.5)
        l01 = lit_at(x0 + 0.5, y0 + 1.5)
        l11 = lit_at(x0 + 1.5, y0 + 1.5)
        top = l00 * (1 - fx) + l10 * fx
        bot = l01 * (1 - fx) + l11 * fx
        return (top * (1 - fy) + bot * fy).astype(np.float32)
    disc = _vogel(int(taps)).astype(np.float32) * np.float32(radius)
    # Interleaved-gradient-noise rotation per point (deterministic in the point's map position).
    ang = np.float32(2 * np.pi) * np.modf(52.9829189 * np.modf(0.06711056 * x + 0.00583715 * y)[0])[0]
    c, sn = np.cos(ang), np.sin(ang)
    acc = np.zeros(x.shape, np.float32)
    for dx, dy in disc:
        acc += lit_at(x + c * dx - sn * dy, y + sn * dx + c * dy)
    return (acc / np.float32(len(disc))).astype(np.float32)
