"""Vectorised CPU z-buffer rasteriser, the one scan-conversion primitive of the package: shared by
previews (``render``), texture projection (paper section 3.5), the synthetic-image engine (paper
section 3.2) and the head-model build (outer-surface visibility, :mod:`digitaltwin_jax.model.visibility`).
It sits in ``geometry`` (arrays in, arrays out, numpy only) so that every layer may use it;
``digitaltwin_jax.render.rasterize`` re-exports it.

Conventions (used by every caller):
  * screen points are ``(V, 3)``: ``x`` = column and ``y`` = row in pixels, origin at the top-left
    *corner* of the image, so the centre of pixel ``(row i, column j)`` is ``(j + 0.5, i + 0.5)``;
    the third column is the depth (camera-frame ``z`` for a perspective camera);
  * a pixel is covered by a triangle when its centre lies inside it (both windings are drawn unless
    ``cull_backfaces``); nearer (smaller depth) fragments win;
  * with ``perspective=True`` depth is the camera ``z`` (> 0) and ``1/z`` is interpolated linearly in
    screen space, which gives perspective-correct barycentrics ``b_i = (w_i / z_i) / sum_j w_j / z_j``
    from the screen-space barycentrics ``w``; with ``perspective=False`` (orthographic views, UV-space
    rasterisation) depth and barycentrics are affine in screen space.

Algorithm (no Python loop over pixels or triangles): every triangle's pixel candidates are the pixel
centres of its bounding box, enumerated for blocks of triangles at once with ``np.repeat``; an
edge-function (barycentric) test keeps the inside ones; the z-buffer is resolved with one
``np.minimum.at`` on 64-bit keys ``(depth bits << 32) | face index`` (float bits are made
order-preserving), which gives the nearest face per pixel and breaks depth ties by the lower face
index, deterministically.  Barycentrics are then recomputed once per covered pixel in float64.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Fragments", "rasterize", "interpolate", "front_facing_det"]

_EMPTY_KEY = np.iinfo(np.int64).max
# Inside test tolerance, in barycentric units: shared edges are drawn by at least one of their two
# triangles (no cracks), at the price of pixels within ~1e-5 altitudes of an edge counting as inside.
_EDGE_EPS = 1e-5
# Pixel candidates enumerated per block (bounds the transient memory to ~100 MB).
_BLOCK = 1 << 21


@dataclasses.dataclass(frozen=True)
class Fragments:
    """Per-pixel result of :func:`rasterize`.

    Attributes:
      face_id: ``(H, W) int32`` index of the visible triangle, ``-1`` where the pixel is empty.
      bary: ``(H, W, 3) float32`` barycentrics of the pixel centre in that triangle (perspective
        correct when rasterised with ``perspective=True``); zeros where empty.
      depth: ``(H, W) float32`` interpolated depth of the visible surface, ``inf`` where empty.
    """

    face_id: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(H, W) bool`` covered pixels."""
        return self.face_id >= 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.face_id.shape


def _check_inputs(points, faces, height, width):
    points = np.asarray(points)
    faces = np.asarray(faces)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_screen must have shape (V, 3), got {points.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise TypeError(f"faces must be an integer array, got dtype {faces.dtype}")
    if not np.issubdtype(points.dtype, np.floating) and not np.issubdtype(points.dtype, np.integer):
        raise TypeError(f"points_screen must be a float array, got dtype {points.dtype}")
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if faces.size and (faces.min() < 0 or faces.max() >= points.shape[0]):
        raise ValueError(
            f"faces index vertices outside [0, {points.shape[0]}): min {faces.min()}, max {faces.max()}"
        )
    if faces.shape[0] >= 2**31:
        raise ValueError("too many faces (at most 2**31 - 1)")
    return points.astype(np.float64), faces.astype(np.int64)


def _ordered_bits(x: np.ndarray) -> np.ndarray:
    """int64 of float32 ``x`` whose integer order equals the float order (negatives included)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.int32)
    b = np.where(b < 0, b ^ np.int32(0x7FFFFFFF), b)
    return b.astype(np.int64)


def rasterize(
    points_screen,
    faces,
    height: int,
    width: int,
    *,
    perspective: bool = True,
    cull_backfaces: bool = False,
    near: float = 1e-6,
) -> Fragments:
    """Rasterise triangles with a z-buffer.

    Args:
      points_screen: ``(V, 3) float`` ``[x px, y px, depth]`` (see module docstring); with
        ``perspective=True`` the depth is camera ``z`` and must be > ``near`` for a triangle to be drawn.
      faces: ``(F, 3) int`` vertex indices.
      height, width: image size in pixels.
      perspective: interpolate ``1/depth`` (perspective camera) instead of depth (orthographic / UV).
      cull_backfaces: drop back-facing triangles (see :func:`front_facing_det`): for a mesh
        counter-clockwise seen from outside and an OpenCV camera, only the faces turned toward the
        camera are drawn (halves the work for closed meshes).
      near: perspective triangles with any vertex depth <= ``near`` are not drawn (no clipping).

    Returns:
      :class:`Fragments` with ``(height, width)`` buffers.

    Raises:
      ValueError: wrong shapes, out-of-range indices, non-finite coordinates in a referenced vertex.
    """
    pts, fcs = _check_inputs(points_screen, faces, height, width)
    height, width = int(height), int(width)
    face_id = np.full((height, width), -1, dtype=np.int32)
    if fcs.shape[0] == 0:
        return Fragments(face_id, np.zeros((height, width, 3), np.float32),
                         np.full((height, width), np.inf, np.float32))

    tri = pts[fcs]  # (F, 3, 3)
    if not np.isfinite(tri).all():
        bad = np.unique(fcs[~np.isfinite(tri).all(axis=2)])
        raise ValueError(f"points_screen has non-finite coordinates at vertices {bad[:10].tolist()}")
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
    det = e1x * e2y - e1y * e2x  # twice the signed area (x right, y down)

    xmin = np.maximum(np.ceil(x.min(axis=1) - 0.5), 0)
    xmax = np.minimum(np.floor(x.max(axis=1) - 0.5), width - 1)
    ymin = np.maximum(np.ceil(y.min(axis=1) - 0.5), 0)
    ymax = np.minimum(np.floor(y.max(axis=1) - 0.5), height - 1)
    keep = (xmax >= xmin) & (ymax >= ymin) & (np.abs(det) > 1e-12)
    if cull_backfaces:
        keep &= front_facing_det(det)
    if perspective:
        keep &= (z > near).all(axis=1)
    sel = np.nonzero(keep)[0]

    zkey = np.full(height * width, _EMPTY_KEY, dtype=np.int64)
    if sel.size:
        inv = 1.0 / det[sel]
        # w1 = a1 dx + b1 dy, w2 = a2 dx + b2 dy with (dx, dy) = pixel centre - vertex 0.
        coef = np.stack(
            [e2y[sel] * inv, -e2x[sel] * inv, -e1y[sel] * inv, e1x[sel] * inv], axis=1
        ).astype(np.float32)
        x0 = x[sel, 0].astype(np.float32)
        y0 = y[sel, 0].astype(np.float32)
        if perspective:
            zz = 1.0 / z[sel]  # interpolate 1/z; the key is -1/z (nearer = larger 1/z)
        else:
            zz = z[sel]
        z0 = zz[:, 0].astype(np.float32)
        dz1 = (zz[:, 1] - zz[:, 0]).astype(np.float32)
        dz2 = (zz[:, 2] - zz[:, 0]).astype(np.float32)
        bx0 = xmin[sel].astype(np.int64)
        by0 = ymin[sel].astype(np.int64)
        bw = (xmax[sel] - xmin[sel] + 1).astype(np.int64)
        bh = (ymax[sel] - ymin[sel] + 1).astype(np.int64)
        # Triangles whose box exceeds one block are cut into row pieces (same plane, fewer rows).
        item = np.arange(sel.size)
        big = bw * bh > _BLOCK
        if big.any():
            rows_per = np.maximum(_BLOCK // bw[big], 1)
            npieces = -(-bh[big] // rows_per)
            ptri = np.repeat(item[big], npieces)
            k = np.arange(ptri.size) - np.repeat(np.cumsum(npieces) - npieces, npieces)
            prow = by0[ptri] + k * np.repeat(rows_per, npieces)
            ph = np.minimum(np.repeat(rows_per, npieces), by0[ptri] + bh[ptri] - prow)
            small = ~big
            item = np.concatenate([item[small], ptri])
            by0 = np.concatenate([by0[small], prow])
            bh = np.concatenate([bh[small], ph])
            bx0 = np.concatenate([bx0[small], bx0[ptri]])
            bw = np.concatenate([bw[small], bw[ptri]])
        # Bucket boxes by power-of-two width and height: each bucket is rasterised as one dense
        # (n, bh, bw) broadcast, with at most 4x padding.
        cw = _ceil_pow2(bw)
        ch = _ceil_pow2(bh)
        bucket = cw * (4 * _BLOCK) + ch
        order = np.argsort(bucket, kind="stable")
        ub, first = np.unique(bucket[order], return_index=True)
        last = np.append(first[1:], order.size)
        for b, lo, hi in zip(ub, first, last):
            bwc, bhc = int(b // (4 * _BLOCK)), int(b % (4 * _BLOCK))
            per = max(_BLOCK // (bwc * bhc), 1)
            for s in range(lo, hi, per):
                it = order[s:min(s + per, hi)]
                _raster_bucket(
                    item[it], bx0[it], by0[it], bw[it], bh[it], bwc, bhc, x0, y0, coef, z0, dz1,
                    dz2, sel, width, zkey, perspective,
                )

    covered = zkey != _EMPTY_KEY
    fid = np.where(covered, zkey & 0xFFFFFFFF, -1).astype(np.int32)
    face_id = fid.reshape(height, width)
    bary, depth = _pixel_barycentrics(face_id, x, y, z, perspective)
    return Fragments(face_id, bary, depth)


def front_facing_det(det):
    """Front-facing test on twice the signed screen area ``det`` (x right, y down).

    A triangle counter-clockwise seen from outside (right-handed outward normal), seen by an OpenCV
    camera (x right, y down, z forward), appears counter-clockwise to the viewer; in y-down pixel
    coordinates that is a *negative* ``(v1 - v0) x (v2 - v0)``.
    """
    return det < 0


def _ceil_pow2(n):
    return (1 << np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64)).astype(np.int64)


def _raster_bucket(t, bx0, by0, bw, bh, bwc, bhc, x0, y0, coef, z0, dz1, dz2, sel, width, zkey,
                   perspective):
    """Inside test and depth keys for ``n`` triangles whose boxes fit in ``bhc x bwc``."""
    jj = np.arange(bwc, dtype=np.float32)
    ii = np.arange(bhc, dtype=np.float32)
    dxs = ((bx0.astype(np.float32) + np.float32(0.5)) - x0[t])[:, None] + jj  # (n, bwc)
    dys = ((by0.astype(np.float32) + np.float32(0.5)) - y0[t])[:, None] + ii  # (n, bhc)
    cf = coef[t]
    w1 = (cf[:, 0:1] * dxs)[:, None, :] + (cf[:, 1:2] * dys)[:, :, None]
    w2 = (cf[:, 2:3] * dxs)[:, None, :] + (cf[:, 3:4] * dys)[:, :, None]
    inside = w1 >= -_EDGE_EPS
    inside &= w2 >= -_EDGE_EPS
    inside &= (w1 + w2) <= 1.0 + _EDGE_EPS
    if bwc > 1 or bhc > 1:  # padding beyond the (clipped) box
        inside &= (np.arange(bwc) < bw[:, None])[:, None, :]
        inside &= (np.arange(bhc) < bh[:, None])[:, :, None]
    flat = np.flatnonzero(inside)
    if flat.size == 0:
        return
    n_i, rem = np.divmod(flat, bhc * bwc)
    r, c = np.divmod(rem, bwc)
    ti = t[n_i]
    zi = z0[ti] + w1.ravel()[flat] * dz1[ti] + w2.ravel()[flat] * dz2[ti]
    if perspective:
        zi = -zi  # larger 1/z is nearer
    key = (_ordered_bits(zi) << 32) | sel[ti].astype(np.int64)
    np.minimum.at(zkey, (by0[n_i] + r) * width + (bx0[n_i] + c), key)


def _pixel_barycentrics(face_id, x, y, z, perspective):
    h, w = face_id.shape
    bary = np.zeros((h * w, 3), np.float32)
    depth = np.full(h * w, np.inf, np.float32)
    fl = face_id.ravel()
    idx = np.flatnonzero(fl >= 0)
    if idx.size:
        f = fl[idx]
        rows, cols = np.divmod(idx, w)
        e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
        e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate faces are never visible
            inv = 1.0 / (e1x * e2y - e1y * e2x)
        # Offsets from vertex 0 are small, so float32 keeps ~1e-6 relative accuracy.
        dx = (cols.astype(np.float32) + np.float32(0.5)) - x[:, 0].astype(np.float32)[f]
        dy = (rows.astype(np.float32) + np.float32(0.5)) - y[:, 0].astype(np.float32)[f]
        w1 = (e2y * inv).astype(np.float32)[f] * dx - (e2x * inv).astype(np.float32)[f] * dy
        w2 = (e1x * inv).astype(np.float32)[f] * dy - (e1y * inv).astype(np.float32)[f] * dx
        np.clip(w1, 0.0, 1.0, out=w1)
        np.clip(w2, 0.0, 1.0, out=w2)
        w0 = np.maximum(1.0 - w1 - w2, 0.0)
        if perspective:
            iz = (1.0 / z).astype(np.float32)
            w0 *= iz[f, 0]
            w1 *= iz[f, 1]
            w2 *= iz[f, 2]
            s = w0 + w1 + w2
            d = 1.0 / s
        else:
            s = w0 + w1 + w2
            zz = z.astype(np.float32)
            d = (w0 * zz[f, 0] + w1 * zz[f, 1] + w2 * zz[f, 2]) / s
        depth[idx] = d
        bary[idx, 0] = w0 / s
        bary[idx, 1] = w1 / s
        bary[idx, 2] = w2 / s
    return bary.reshape(h, w, 3), depth.reshape(h, w)


def interpolate(fragments: Fragments, attributes, faces) -> np.ndarray:
    """Interpolate per-vertex attributes at every covered pixel.

    Args:
      fragments: output of :func:`rasterize`.
      attributes: ``(V, C)`` (or ``(V,)``) per-vertex values.
      faces: ``(F, 3) int`` indices into ``attributes`` with the same face order as the rasterised
        faces (e.g. ``uv_faces`` to interpolate UVs).

    Returns:
      ``(H, W, C)`` float32 (``(H, W)`` for 1-D attributes); zeros where the pixel is empty.
    """
    a = np.asarray(attributes)
    squeeze = a.ndim == 1
    if squeeze:
        a = a[:, None]
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    h, w = fragments.face_id.shape
    out = np.zeros((h, w, a.shape[1]), np.float32)
    m = fragments.face_id >= 0
    f = fragments.face_id[m]
    if f.size:
        if f.max() >= faces.shape[0]:
            raise ValueError("fragments reference faces beyond the given faces array")
        corner = a[faces[f]].astype(np.float32)  # (N, 3, C)
        out[m] = np.einsum("nk,nkc->nc", fragments.bary[m], corner)
    return out[..., 0] if squeeze else out
