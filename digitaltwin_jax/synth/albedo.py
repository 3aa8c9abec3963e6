"""Albedo (diffuse colour) maps in the head model's UV layout for the synthetic renders (paper section
3.2: every synthetic head wears the diffuse map of a scanned subject; here a documented procedural
skin model stands in for the paper's scan textures).

The skin model (parameters :class:`~digitaltwin_jax.texture.skin.SkinParams`, their prior
:func:`~digitaltwin_jax.texture.skin.sample_skin_params` and the base colour) is the one the texture
bank uses (:mod:`digitaltwin_jax.texture.skin`); this module is its renderer's baker
(:func:`procedural_albedo`), evaluated per texel at the texel's 3-D position on the mean head (so
every feature is seamless across UV charts):

* base tone: :func:`~digitaltwin_jax.texture.skin.skin_base_linear`: ``tone`` in [0, 1] (light to
  dark) interpolates, in linear RGB, five anchor colours; ``undertone`` in [-1, 1] tilts toward
  pink/red (-) or yellow/olive (+);
* low-frequency variation: a sum of random 3-D plane waves (wavelengths 20-90 mm) modulating
  brightness by a few percent, plus a hemoglobin (redness) field raised on the cheeks, nose tip, ears
  and lips and a slight darkening around the eyes;
* lash line: a dark band along the eye landmark contours (2.2 mm on the upper lid, 1 mm below);
* lips: inside the outer lip contour (landmarks 48-59) the colour moves to a darker, redder lip tone;
* brows: along the brow landmark polylines (17-21, 22-26) a band tapering laterally, broken by
  strand-like noise, takes the hair colour (darkened to at most 5 % linear luminance: blond and
  grey hair keep visibly darker brows);
* scalp hair (with probability ``hair_probability``): above a hairline given in spherical angles
  around the skull (high at the forehead, above the ears at the sides, low at the nape), with a noisy
  border, the colour is the hair colour; otherwise a bald or shaved scalp;
* stubble (optional): a faint hair-coloured tint on the beard area;
* fine grain: per-texel noise of about 2 % (pores).

Maps are uint8 sRGB ``(S, S, 3)`` with the OBJ UV convention (row 0 at v = 1), charts padded outward
so bilinear lookups do not bleed.  A :class:`AlbedoBank` holds a fixed set of maps with ids.  The
generic specular map (:func:`specular_map`) scales the specular lobe: T-zone and lips shinier, hair
and ears duller.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy.ndimage import map_coordinates

from digitaltwin_jax.render.colorspace import linear_to_srgb, srgb_to_linear, to_uint8
from digitaltwin_jax.render.rasterize import rasterize
from digitaltwin_jax.texture.skin import SkinParams, sample_skin_params, segment_distance, skin_base_linear, smoothstep

__all__ = [
    "UVGeometry",
    "uv_geometry",
    "procedural_albedo",
    "specular_map",
    "AlbedoBank",
    "procedural_bank",
    "texture_bank_albedo",
]

@dataclasses.dataclass(frozen=True)
class UVGeometry:
    """Per-texel geometry of a UV layout on the mean head.

    Attributes:
      size: maps are ``size x size``.
      mask: ``(S, S) bool`` texels inside a UV chart.
      positions: ``(N, 3) float32`` head-frame position (mm) of each covered texel (row-major order
        of ``mask``).
      landmarks: ``(68, 3) float32`` landmark positions on the mean head.
    """

    size: int
    mask: np.ndarray
    positions: np.ndarray
    landmarks: np.ndarray


def uv_geometry(vertices, faces, uvs, uv_faces, landmark_indices, size: int = 512) -> UVGeometry:
    """Rasterise the UV layout and interpolate the mean-head positions at the texel centres.

    Args:
      vertices: ``(V, 3) float`` mean head (mm, head frame).
      faces: ``(F, 3) int``; uvs: ``(T, 2)`` OBJ UVs; uv_faces: ``(F, 3) int``.
      landmark_indices: ``(68,) int``.
      size: texture side.
    """
    uvs = np.asarray(uvs, np.float64)
    faces = np.asarray(faces)
    uv_faces = np.asarray(uv_faces)
    if uv_faces.shape != faces.shape:
        raise ValueError(f"uv_faces {uv_faces.shape} must match faces {faces.shape}")
    pts = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size, np.zeros(len(uvs))], axis=1)
    fr = rasterize(pts, uv_faces, size, size, perspective=False)
    mask = fr.face_id >= 0
    fid = fr.face_id[mask]
    b = fr.bary[mask]
    v = np.asarray(vertices, np.float32)
    pos = np.einsum("nk,nkc->nc", b, v[faces[fid]])
    lm = v[np.asarray(landmark_indices)]
    return UVGeometry(int(size), mask, pos.astype(np.float32), lm.astype(np.float32))


_NOISE_VOLUME: list = []


def _noise_volume():
    """A fixed tileable ``(32, 32, 32)`` smooth Gaussian noise volume with unit standard deviation."""
    if not _NOISE_VOLUME:
        white = np.random.default_rng(20240611).standard_normal((32, 32, 32))
        f = np.fft.fftfreq(32)
        k2 = f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2
        vol = np.real(np.fft.ifftn(np.fft.fftn(white) * np.exp(-k2 / (2 * 0.08**2))))
        _NOISE_VOLUME.append(((vol - vol.mean()) / vol.std()).astype(np.float32))
    return _NOISE_VOLUME[0]


def _noise(p, rng, wavelength, stretch=(1.0, 1.0, 1.0)):
    """Smooth unit-variance noise at points ``p`` (N, 3) mm with features of about ``wavelength`` mm
    (trilinear lookup in the fixed volume after a random rotation and offset drawn from ``rng``)."""
    vol = _noise_volume()
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    off = rng.uniform(0, 32, size=3)
    # the volume's features are ~4 cells wide
    x = (p * np.asarray(stretch, np.float32)) @ (q.T * (4.0 / wavelength)).astype(np.float32) + off.astype(np.float32)
    out = map_coordinates(vol, x.T, order=1, mode="grid-wrap", prefilter=False)
    return out / np.float32(0.6)  # trilinear interpolation shrinks the variance


def _fbm(p, rng, wavelength, octaves=3):
    out = np.zeros(len(p), np.float32)
    amp, tot = 1.0, 0.0
    for _ in range(octaves):
        out += amp * _noise(p, rng, wavelength)
        tot += amp**2
        wavelength *= 0.5
        amp *= 0.5
    return out / np.float32(np.sqrt(tot))


def _polyline_dist(p, pts):
    """Distance to a polyline and the arc-length parameter (0..1) of the nearest point."""
    lengths = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    best = np.full(len(p), np.inf, np.float32)
    s = np.zeros(len(p), np.float32)
    for i in range(len(pts) - 1):
        d, t = segment_distance(p, pts[i], pts[i + 1])
        better = d < best
        best = np.where(better, d, best)
        s = np.where(better, cum[i] + t * (cum[i + 1] - cum[i]), s)
    return best, s


def _inside_polygon_2d(p, poly):
    """Even-odd test of points ``(N, 2)`` against polygon ``(M, 2)``."""
    x, y = p[:, 0], p[:, 1]
    inside = np.zeros(len(p), bool)
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi = poly[i]
        xj, yj = poly[j]
        cond = ((yi > y) != (yj > y)) & (x < (xj - xi) * (y - yi) / (yj - yi + 1e-12) + xi)
        inside ^= cond
        j = i
    return inside


def _regions(geom: UVGeometry):
    """Static per-texel region fields (depend only on the mean head)."""
    p = geom.positions
    lm = geom.landmarks
    out = {}
    # Lips: inside the outer lip contour in the frontal (x, y) projection, on the front of the face.
    lip_poly = lm[48:60, :2]
    centre = lip_poly.mean(axis=0)
    grow = centre + (lip_poly - centre) * 1.06
    front = p[:, 2] > lm[48:60, 2].min() - 8.0
    inside = _inside_polygon_2d(p[:, :2], grow) & front
    out["lips"] = inside.astype(np.float32)
    # Brows: distance to the two brow polylines, thickness tapering from medial to lateral.
    brow = np.zeros(len(p), np.float32)
    for idx in (list(range(21, 16, -1)), list(range(22, 27))):  # medial -> lateral
        line = lm[idx] - np.array([0.0, 2.5, 0.0], np.float32)  # landmarks trace the brow's top edge
        d, s = _polyline_dist(p, line)
        half = 5.5 - 2.5 * s  # mm: thick medial head, thin lateral tail
        brow = np.maximum(brow, 1.0 - smoothstep(half * 0.55, half, d))
    out["brows"] = brow * (p[:, 2] > 40)
    # Skull spherical angles for the hairline: centre between the ears, above the eyes.
    c = np.array([0.0, lm[36:48, 1].mean() + 5.0, lm[0, 2] - 60.0], np.float32)
    q = p - c
    r = np.linalg.norm(q, axis=1) + 1e-6
    elev = np.degrees(np.arcsin(np.clip(q[:, 1] / r, -1, 1)))
    azim = np.arctan2(q[:, 0], q[:, 2])  # 0 = front
    out["elev"] = elev.astype(np.float32)
    out["azim"] = azim.astype(np.float32)
    # Ears: lateral points near the ear landmarks' height, excluded from hair.
    ear = ((np.abs(p[:, 0]) > np.abs(lm[0, 0]) - 3.0) & (p[:, 1] < lm[0, 1] + 28)
           & (p[:, 1] > lm[2, 1] - 20) & (p[:, 2] > lm[0, 2] - 75) & (p[:, 2] < lm[0, 2] + 5))
    out["ears"] = ear.astype(np.float32)
    # Redness blobs: cheeks, nose tip; plus ears.
    cheeks = np.zeros(len(p), np.float32)
    for side in (1, -1):
        cc = np.array([side * 40.0, lm[30, 1] - 5.0, lm[30, 2] - 30.0], np.float32)
        cheeks += np.exp(-np.sum((p - cc) ** 2, axis=1) / (2 * 18.0**2))
    nose = np.exp(-np.sum((p - lm[30]) ** 2, axis=1) / (2 * 12.0**2))
    out["red"] = np.clip(cheeks + 0.7 * nose + 0.6 * out["ears"], 0, 1).astype(np.float32)
    # Periorbital darkening.
    eyes = np.zeros(len(p), np.float32)
    for a, b in ((36, 42), (42, 48)):
        ec = lm[a:b].mean(axis=0) - np.array([0, 6.0, 0], np.float32)
        eyes += np.exp(-np.sum((p - ec) ** 2, axis=1) / (2 * 10.0**2))
    out["eyes"] = eyes
    # Lash line: a dark band along the eyelid margins (upper lid thicker).
    lash = np.zeros(len(p), np.float32)
    for a, b in ((36, 42), (42, 48)):
        ring = np.concatenate([lm[a:b], lm[a:a + 1]])
        d, _ = _polyline_dist(p, ring)
        upper = p[:, 1] > lm[a:b, 1].mean()
        width = np.where(upper, 2.2, 1.0)
        lash = np.maximum(lash, 1.0 - smoothstep(0.4 * width, width, d))
    out["lashes"] = lash * (p[:, 2] > 40)
    # Beard area: below the nose, in front of the ears, down to under the chin.
    below_nose = p[:, 1] < lm[33, 1] - 2.0
    front_face = p[:, 2] > lm[4, 2] - 25
    above_neck = p[:, 1] > lm[8, 1] - 25
    out["beard"] = (below_nose & front_face & above_neck & (out["lips"] < 0.5)).astype(np.float32)
    return out


_REGION_CACHE: dict = {}


def _cached_regions(geom):
    key = id(geom)
    if key not in _REGION_CACHE:
        _REGION_CACHE.clear()
        _REGION_CACHE[key] = (geom, _regions(geom))
    return _REGION_CACHE[key][1]


def _coarse(geom: UVGeometry, reg, field, factor: int = 4):
    """A smooth field evaluated on a ``factor`` times coarser UV grid (at chart-padded positions)
    and bilinearly upsampled: ``field((M, 3) positions) -> (M,)``; returns ``(N,)`` at the texels."""
    key = ("coarse", factor)
    if key not in reg:
        pos = _to_map(geom, geom.positions, pad=2 * factor)
        lo = geom.size // factor
        reg[key] = cv2.resize(pos, (lo, lo), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    lo = geom.size // factor
    vals = field(reg[key]).reshape(lo, lo).astype(np.float32)
    return cv2.resize(vals, (geom.size, geom.size), interpolation=cv2.INTER_LINEAR)[geom.mask]


def _to_map(geom: UVGeometry, values, pad: int = 6):
    s = geom.size
    out = np.zeros((s, s) + values.shape[1:], np.float32)
    out[geom.mask] = values
    m = geom.mask.astype(np.float32)
    cur = out * (m[..., None] if out.ndim == 3 else m)
    w = m.copy()
    for _ in range(pad):  # grow charts outward: empty texels take the mean of filled neighbours
        num = cv2.blur(cur, (3, 3), borderType=cv2.BORDER_REPLICATE)
        den = cv2.blur(w, (3, 3), borderType=cv2.BORDER_REPLICATE)
        grow = (w == 0) & (den > 0)
        if num.ndim == 3:
            cur[grow] = num[grow] / den[grow][:, None]
        else:
            cur[grow] = num[grow] / den[grow]
        w = np.where(grow, 1.0, w).astype(np.float32)
    if (w == 0).any():
        cur[w == 0] = values.mean(axis=0)
    return cur


def procedural_albedo(geom: UVGeometry, params: SkinParams) -> np.ndarray:
    """Procedural skin albedo map (module docstring) as ``(S, S, 3) uint8`` sRGB."""
    rng = np.random.default_rng(params.seed)
    reg = _cached_regions(geom)
    p = geom.positions
    n = len(p)
    skin = skin_base_linear(params.tone, params.undertone)
    col = np.broadcast_to(skin, (n, 3)).copy()
    # low-frequency brightness and hue variation
    lf = _coarse(geom, reg, lambda q: _fbm(q, rng, 60.0))
    col *= (1.0 + 0.05 * lf)[:, None]
    hue = _coarse(geom, reg, lambda q: _noise(q, rng, 80.0))
    col *= (1.0 + 0.02 * hue[:, None] * np.array([1.0, -0.5, -1.0], np.float32))
    # hemoglobin: redness reduces green and blue
    red = (params.redness * reg["red"] * (0.7 + 0.3 * _coarse(geom, reg, lambda q: _noise(q, rng, 15.0))))[:, None]
    col *= 1.0 - red * np.array([0.0, 0.22, 0.18], np.float32) * (1.0 - 0.5 * params.tone)
    # periorbital darkening
    col *= (1.0 - 0.12 * np.clip(reg["eyes"], 0, 1))[:, None]
    # lash line (eyelashes and lid margin)
    sel = reg["lashes"] > 0
    a = 0.85 * reg["lashes"][sel]
    col[sel] = col[sel] * (1 - a[:, None]) + a[:, None] * np.float32(0.01)
    # lips
    lip = reg["lips"]
    lip_col = skin * np.array([0.85, 0.52, 0.55], np.float32) * (1.0 - 0.1 * params.undertone)  # pinker lips for pink skin
    lip_a = cv2.GaussianBlur(_to_map(geom, lip, pad=2), (0, 0), 1.2)[geom.mask]
    col = col * (1 - 0.85 * lip_a[:, None]) + 0.85 * lip_a[:, None] * lip_col
    hair_lin = srgb_to_linear(np.asarray(params.hair_color, np.float32) / 255.0)
    # brows are darker than light (blond, grey) scalp hair
    brow_lin = np.minimum(hair_lin, hair_lin * (0.05 / max(float(hair_lin @ [0.2126, 0.7152, 0.0722]), 1e-6)))
    # stubble
    if params.stubble > 0:
        sel = reg["beard"] > 0
        grain = np.clip(0.5 + 0.5 * _noise(p[sel], rng, 1.5), 0, 1)
        a = params.stubble * 0.35 * reg["beard"][sel] * grain
        col[sel] = col[sel] * (1 - a[:, None]) + a[:, None] * hair_lin
    # brows with strand noise
    sel = reg["brows"] > 0
    strands = np.clip(0.92 + 0.12 * _noise(p[sel], rng, 1.0, stretch=(0.3, 1.0, 1.0)), 0.75, 1.0)
    a = np.clip(reg["brows"][sel] * (0.75 + 0.25 * params.brow_density) * strands, 0, 1) * 0.95
    col[sel] = col[sel] * (1 - a[:, None]) + a[:, None] * brow_lin
    # scalp hair above a noisy hairline
    if params.hair:
        az = reg["azim"]
        # hairline elevation (deg) vs azimuth: high at the front, above the ears, low at the nape
        line = 24.0 + params.hairline - 14.0 * (1 - np.cos(az)) - 45.0 * np.clip(-np.cos(az), 0, 1) ** 1.5
        line = line + 2.0 * _coarse(geom, reg, lambda q: _noise(q, rng, 30.0))
        h = smoothstep(line - 1.5, line + 2.5, reg["elev"]) * (1.0 - reg["ears"])
        sel = h > 0
        tex = 1.0 + 0.1 * _noise(p[sel], rng, 1.5, stretch=(1.0, 0.3, 1.0))
        hc = hair_lin * tex[:, None]
        col[sel] = col[sel] * (1 - h[sel, None]) + h[sel, None] * hc
    # fine grain
    col *= (1.0 + 0.02 * rng.standard_normal(n).astype(np.float32))[:, None]
    rgb = linear_to_srgb(np.clip(col, 0, 1))
    return to_uint8(_to_map(geom, rgb))


def specular_map(geom: UVGeometry) -> np.ndarray:
    """Generic specular-strength map ``(S, S) float32`` (1 = average skin; module docstring)."""
    reg = _cached_regions(geom)
    p = geom.positions
    lm = geom.landmarks
    tzone = np.exp(-((p[:, 0] / 22.0) ** 2)) * (p[:, 1] > lm[33, 1]) * (p[:, 2] > lm[0, 2] + 20)
    s = 0.9 + 0.6 * tzone + 0.5 * reg["lips"] - 0.3 * reg["ears"]
    s *= 1.0 - 0.6 * smoothstep(30.0, 40.0, reg["elev"])  # hair / scalp top
    return _to_map(geom, s.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class AlbedoBank:
    """A fixed set of albedo maps.

    Attributes:
      maps: ``(B, S, S, 3) uint8`` sRGB maps in the model's UV layout.
      ids: ``B`` names (``"procedural-0007"``, or the source photo's id for baked maps).
      tones: ``(B,) float32`` skin tone parameter (0 light .. 1 dark; nan when unknown).
      specular: ``(S, S) float32`` the generic specular map shared by all maps.
    """

    maps: np.ndarray
    ids: tuple[str, ...]
    tones: np.ndarray
    specular: np.ndarray

    def __len__(self) -> int:
        return int(self.maps.shape[0])


def procedural_bank(geom: UVGeometry, count: int, seed: int, *, hair_probability: float = 0.8) -> AlbedoBank:
    """``count`` procedural maps, deterministic for ``seed`` (tones stratified over [0, 1])."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA1BED0]))
    tones = (np.arange(count) + rng.uniform(0, 1, count)) / count
    rng.shuffle(tones)
    maps = np.empty((count, geom.size, geom.size, 3), np.uint8)
    for i in range(count):
        prm = sample_skin_params(rng, tone=float(tones[i]), hair_probability=hair_probability)
        maps[i] = procedural_albedo(geom, prm)
    return AlbedoBank(maps, tuple(f"procedural-{i:04d}" for i in range(count)),
                      tones.astype(np.float32), specular_map(geom))


def texture_bank_albedo(texture_bank, model, geom: UVGeometry) -> AlbedoBank:
    """An :class:`AlbedoBank` from the texture pipeline's bank
    (:class:`digitaltwin_jax.texture.bank.TextureBank`): procedural entries are baked and
    photo-derived entries resized to ``geom.size``; tones from the entries' base colour luminance
    (0 light .. 1 dark, relative to the bank's range)."""
    n = len(texture_bank)
    if n < 1:
        raise ValueError("the texture bank is empty")
    maps = np.empty((n, geom.size, geom.size, 3), np.uint8)
    lum = np.empty(n, np.float32)
    for i in range(n):
        tex = np.asarray(texture_bank.texture(i, model, geom.size), np.float32)
        maps[i] = to_uint8(tex)
        lum[i] = float(np.median(tex[geom.mask], axis=0) @ [0.2126, 0.7152, 0.0722])
    span = max(float(lum.max() - lum.min()), 1e-6)
    tones = ((lum.max() - lum) / span).astype(np.float32)
    ids = tuple(e.name for e in texture_bank.entries)
    return AlbedoBank(maps, ids, tones, specular_map(geom))
