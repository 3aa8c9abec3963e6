"""Procedural skin diffuse maps for the texture bank (paper section 3.5: the areas a selfie never
sees -- back of the head, neck, under the chin -- are filled from a bank texture).

The paper fills them from the closest of 482 scanned subjects; we have no scans, so a bank entry
is a small set of parameters of the shared skin model (:mod:`digitaltwin_jax.texture.skin`:
:class:`~digitaltwin_jax.texture.skin.SkinParams`, the Monk palette), baked on demand in the head
model's UV layout by this module.  Everything is evaluated at each texel's 3-D position on the generic (mean) head, so
patterns are continuous across UV seams and independent of the map resolution:

* base colour: :func:`~digitaltwin_jax.texture.skin.skin_base_color`, the Monk Skin Tone scale
  interpolated at ``tone`` in [0, 1], shifted by ``undertone`` (-1 pink/cool ... +1 yellow/warm);
* low-frequency tone variation: a sum of 12 random 3-D cosines (wavelengths 50-150 mm) and faint
  mottling (24 cosines, 8-20 mm), amplitude ``variation`` (luminance) and ``variation / 3`` (redness);
* regions from the 68 landmarks of the mean head: lips (outer-lip polygon, soft 2 mm edge) tinted by
  ``lip_tint``; eyebrows (tapered tubes around landmarks 17-26) and a darker scalp above a hairline
  that runs from 55 mm above the brows at the front to ear-top level at the sides and mouth level at
  the back (``hair_darkness``); cheek and nose-tip redness (``redness``); eye regions darkened 20 %;
* fine pore noise in texel space (1.5 % at the generation resolution).

All randomness comes from ``seed`` (numpy ``Generator``); the same parameters give the same map.
Colours are sRGB in [0, 1].
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.texture.seams import dilate_texture
from digitaltwin_jax.texture.skin import SkinParams, segment_distance, skin_base_color, smoothstep
from digitaltwin_jax.texture.uv import scatter_texels, texel_interpolate, uv_sampling

__all__ = ["SkinLayout", "skin_layout", "skin_colors", "bake_procedural"]


@dataclasses.dataclass(frozen=True)
class SkinLayout:
    """Where the skin regions are on the generic head (head frame, mm; ICT: y up, +z face).

    Attributes:
      lip_polygon: ``(12, 3)`` outer-lip landmarks (48-59), or None (no lips).
      brows: ``(2, 5, 3)`` eyebrow landmarks (17-21, 22-26), or None.
      cheeks: ``(2, 3)`` cheek centres, or None.
      nose_tip: ``(3,)`` or None.
      hairline: ``(front_y, side_y, back_y)`` heights of the hairline, or None (no scalp region).
      centre: ``(3,)`` point on the vertical axis of the head (azimuth origin for the hairline).
    """

    lip_polygon: np.ndarray | None = None
    brows: np.ndarray | None = None
    cheeks: np.ndarray | None = None
    nose_tip: np.ndarray | None = None
    hairline: tuple[float, float, float] | None = None
    centre: np.ndarray | None = None


def skin_layout(model) -> SkinLayout:
    """Region layout of a :class:`~digitaltwin_jax.model.HeadModel` from its mean shape and its 68
    landmarks (iBUG order)."""
    v = np.asarray(model.vertices, np.float64)
    L = v[np.asarray(model.landmark_indices)]
    brows = np.stack([L[17:22], L[22:27]])
    brow_y = float(brows[..., 1].mean())
    eye_y = float(L[36:48, 1].mean())
    mouth_y = float(L[48:60, 1].mean())
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = np.array([0.5 * (lo[0] + hi[0]), 0.0, 0.5 * (lo[2] + hi[2])])
    nose = v[int(model.nose_tip_index)]
    return SkinLayout(
        lip_polygon=L[48:60],
        brows=brows,
        cheeks=np.stack([0.5 * (L[2] + L[31]), 0.5 * (L[14] + L[35])]),
        nose_tip=nose,
        hairline=(brow_y + 55.0, eye_y + 15.0, mouth_y),
        centre=centre,
    )


def _cosines(rng, pos, n, lam_min, lam_max):
    """Sum of ``n`` random 3-D cosines, normalised to unit standard deviation."""
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    k = 2 * np.pi / rng.uniform(lam_min, lam_max, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    arg = pos @ (d * k[:, None]).T.astype(np.float32) + ph.astype(np.float32)  # (N, n)
    out = np.cos(arg).sum(axis=1)
    return out / np.sqrt(n / 2.0)


def _near_box(pos, pts, margin, z_depth):
    """Points within the bounding box of ``pts`` grown by ``margin`` in x, y and ``z_depth`` in z."""
    grow = np.array([margin, margin, z_depth])
    lo = pts.min(axis=0) - grow
    hi = pts.max(axis=0) + grow
    return np.flatnonzero(np.all((pos >= lo) & (pos <= hi), axis=1))


def _region_weights(pos, layout: SkinLayout):
    n = len(pos)
    z = np.zeros(n, np.float32)
    lips = brows = hair = red = z
    if layout.lip_polygon is not None:
        from matplotlib.path import Path

        poly = np.asarray(layout.lip_polygon, np.float64)
        near = _near_box(pos, poly, 4.0, z_depth=12.0)
        p = pos[near]
        inside = Path(poly[:, :2]).contains_points(p[:, :2])
        d = np.full(len(p), np.inf)
        for k in range(len(poly)):
            d = np.minimum(d, segment_distance(p[:, :2], poly[k, :2], poly[(k + 1) % len(poly), :2])[0])
        lips = np.zeros(n, np.float32)
        lips[near] = smoothstep(1.5, -1.0, np.where(inside, -d, d))
    if layout.brows is not None:
        w = np.zeros(n)
        for side in layout.brows:
            side = np.asarray(side, np.float64) - np.array([0.0, 2.0, 0.0])
            inner_first = side if abs(side[0, 0]) < abs(side[-1, 0]) else side[::-1]
            near = _near_box(pos, inner_first, 8.0, z_depth=15.0)
            p = pos[near]
            ws = np.zeros(len(p))
            for k in range(len(inner_first) - 1):
                d, t = segment_distance(p, inner_first[k], inner_first[k + 1])
                s = (k + t) / (len(inner_first) - 1)  # 0 at the inner end, 1 at the tail
                hw = 5.0 - 2.5 * s
                ws = np.maximum(ws, smoothstep(hw + 1.5, hw - 1.0, d) * (1.0 - 0.4 * s))
            w[near] = np.maximum(w[near], ws)
        brows = w.astype(np.float32)
    if layout.hairline is not None:
        front_y, side_y, back_y = layout.hairline
        c = np.asarray(layout.centre if layout.centre is not None else np.zeros(3), np.float64)
        az = np.abs(np.arctan2(pos[:, 0] - c[0], pos[:, 2] - c[2]))  # 0 front, pi back
        ca = np.cos(az)
        yh = np.where(ca >= 0, side_y + (front_y - side_y) * ca, side_y + (side_y - back_y) * ca)
        hair = smoothstep(yh - 6.0, yh + 10.0, pos[:, 1]).astype(np.float32)
    red_w = np.zeros(n)
    if layout.cheeks is not None:
        for cc in np.asarray(layout.cheeks, np.float64):
            red_w = np.maximum(red_w, np.exp(-np.sum((pos - cc) ** 2, axis=1) / (2 * 16.0**2)))
    if layout.nose_tip is not None:
        nt = np.asarray(layout.nose_tip, np.float64)
        red_w = np.maximum(red_w, 0.7 * np.exp(-np.sum((pos - nt) ** 2, axis=1) / (2 * 8.0**2)))
    red = red_w.astype(np.float32)
    return lips, brows, hair, red


def skin_colors(params: SkinParams, positions, layout: SkinLayout | None = None, eye_weight=None):
    """``(N, 3) float32`` sRGB albedo of the skin model at head-frame points ``(N, 3)`` (no pores)."""
    pos = np.asarray(positions, np.float32)
    rng = np.random.default_rng(int(params.seed))
    base = skin_base_color(params.tone, params.undertone)
    lum = 1.0 + params.variation * (0.8 * _cosines(rng, pos, 12, 50.0, 150.0)
                                    + 0.2 * _cosines(rng, pos, 24, 8.0, 20.0))
    redv = (params.variation / 3.0) * _cosines(rng, pos, 6, 30.0, 90.0)
    col = base[None, :] * lum[:, None]
    col[:, 0] *= 1.0 + redv
    col[:, 1] *= 1.0 - 0.5 * redv
    layout = layout or SkinLayout()
    lips, brows, hair, red = _region_weights(pos, layout)
    hair_col = np.array([0.16, 0.11, 0.08], np.float32) * (1.3 - 0.6 * params.hair_darkness) \
        + 0.25 * base * (1 - params.hair_darkness)
    red_f = np.array([1.06, 0.90, 0.90], np.float32)
    col *= 1.0 + (red_f - 1.0)[None, :] * (params.redness * red)[:, None]
    lip_f = np.array([0.88, 0.62, 0.66], np.float32) if params.tone < 0.6 else \
        np.array([0.80, 0.62, 0.68], np.float32)
    col *= 1.0 + (lip_f - 1.0)[None, :] * (params.lip_tint * lips)[:, None]
    scalp = 0.85 * params.hair_darkness * hair
    col = col * (1 - scalp[:, None]) + (0.45 * col + 0.55 * hair_col) * scalp[:, None]
    bw = 0.85 * params.hair_darkness * brows
    col = col * (1 - bw[:, None]) + hair_col[None, :] * bw[:, None]
    if eye_weight is not None:
        e = np.clip(np.asarray(eye_weight, np.float32), 0, 1)
        col *= (1.0 - 0.2 * e)[:, None]
    return np.clip(col, 0.0, 1.0).astype(np.float32)


def bake_procedural(params: SkinParams, vertices, faces, uvs, uv_faces, size: int = 2048, *,
                    layout: SkinLayout | None = None, eye_mask=None, gen_size: int = 512) -> np.ndarray:
    """Bake a procedural skin into a UV diffuse map.

    Args:
      params: :class:`SkinParams`.
      vertices: ``(V, 3)`` head-frame positions on which the model is evaluated (the mean head).
      faces, uvs, uv_faces: the mesh and its UV layout (OBJ convention).
      size: output side in texels.
      layout: :class:`SkinLayout` (from :func:`skin_layout`) or None for plain skin.
      eye_mask: optional ``(V,)`` bool/float eye regions (darkened).
      gen_size: resolution at which the model is evaluated (then bicubically resized to ``size``);
        charts are padded by ``gen_size // 128`` texels at that resolution before the resize.

    Returns:
      ``(size, size, 3) float32`` sRGB in [0, 1]; texels outside the charts hold padded / mean
      colour (no dark seams).
    """
    gen = int(min(gen_size, size))
    s = uv_sampling(uvs, uv_faces, gen)
    pos = texel_interpolate(s, vertices, faces)
    ew = None if eye_mask is None else texel_interpolate(s, np.asarray(eye_mask, np.float32), faces)
    col = skin_colors(params, pos, layout, ew)
    rng = np.random.default_rng(int(params.seed) + 7919)
    pores = cv2.GaussianBlur(rng.standard_normal((gen, gen)).astype(np.float32), (0, 0), 0.7)
    pores = pores.ravel()[s.texels] * (0.015 / max(float(pores.std()), 1e-6))
    col = np.clip(col * (1.0 + pores[:, None]), 0.0, 1.0)
    tex = dilate_texture(scatter_texels(s, col), s.chart_mask, iterations=max(2, gen // 128))
    if size != gen:
        tex = cv2.resize(tex, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(tex, 0.0, 1.0).astype(np.float32)
