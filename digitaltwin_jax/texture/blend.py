"""Band blending of the projected photo into the bank (issue 19): the photo keeps its own colours
where it saw the face; only the bank adapts, in a band around the photo region.

Whole-region Poisson cloning (Perez 2003) adds to the photo the harmonic interpolation of the
photo/bank mismatch along the region's border, so the *whole face* drifts toward the bank's tone (on
the example photo: paler and greener, re-render PSNR 17 dB).  Here the roles are reversed and the
correction is confined to a band:

1. ``core`` (the photo region) keeps the photo, except a feather of ``feather`` texels along its
   border to the bank;
2. the mismatch ``photo - bank`` along that border is smoothed along the border (Gaussian of
   ``sigma`` texels, normalised over the border ring: one dark hair strand or a collar pixel at the
   edge of the face oval does not spread into the neck as a dark halo);
3. in the band of the bank within ``width`` texels of the core (distances also counted from the core's
   partners across UV seams), the bank is Poisson-blended with its own gradients as guidance and the
   smoothed border colour ``bank + smoothed mismatch`` as Dirichlet data on the core side (the bank
   beyond the band is the other Dirichlet side): the bank's tone bends smoothly to the face's over
   the band; nothing flows across UV chart borders, texels are coupled across UV seams
   (:func:`~.poisson.poisson_blend`);
4. inside the feather the photo is mixed with the same smoothed border colour by a smoothstep of the
   distance to the border, so the high-frequency part of the mismatch leaves no edge.

Maps: ``(S, S, 3)`` float32 sRGB in [0, 1]; masks ``(S, S)`` bool.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend

__all__ = ["band_blend"]


# Masked writes with OpenCV: at 2048 a boolean-indexed ``dst[mask] = src[mask]`` gathers and scatters
# every selected texel (~70 ms for a face-sized mask); cv2's masked copy / add / subtract walk the rows
# once (~5 ms).  Same values (copies, and float32 arithmetic texel by texel).  OpenCV takes arrays
# whose pixels are contiguous (any row stride); for any other layout the NumPy form runs instead.
def _cv_where(op, dst, mask, *args) -> bool:
    """Run ``op(*args, dst=dst, mask=mask)`` in place; False when OpenCV cannot write into ``dst``."""
    try:
        return op(*args, dst=dst, mask=np.asarray(mask, bool).view(np.uint8)) is dst
    except cv2.error:
        return False


def _copy_where(dst, src, mask):
    """``dst[mask] = src[mask]`` in place (``(H, W, C)`` float32 ``dst``, possibly a view)."""
    if not _cv_where(lambda s, dst, mask: cv2.copyTo(s, mask, dst), dst, mask, src):
        dst[mask] = src[mask]


def _add_where(dst, src, mask):
    """``dst[mask] += src[mask]`` in place."""
    if not _cv_where(cv2.add, dst, mask, dst, src):
        dst[mask] += src[mask]


def _subtract_where(dst, a, b, mask):
    """``dst[mask] = a[mask] - b[mask]`` in place."""
    if not _cv_where(cv2.subtract, dst, mask, a, b):
        dst[mask] = a[mask] - b[mask]


def _cell_mean(a, f):
    """Means over ``f x f`` cells (zero-padded at the bottom / right), ``float32``."""
    a = np.asarray(a, np.float32)
    h, w = a.shape[:2]
    hs, ws = -(-h // f), -(-w // f)
    if (hs * f, ws * f) != (h, w):  # zero padding (a fresh array and one copy: np.pad is ~3x slower)
        padded = np.zeros((hs * f, ws * f) + a.shape[2:], np.float32)
        padded[:h, :w] = a
        a = padded
    return cv2.resize(a, (ws, hs), interpolation=cv2.INTER_AREA).reshape((hs, ws) + a.shape[2:])


def _upsample(a, f, h, w):
    """Bilinear upsampling of cell values by ``f``, cropped to ``(h, w)``."""
    hs, ws = a.shape[:2]
    up = cv2.resize(a, (ws * f, hs * f), interpolation=cv2.INTER_LINEAR)
    return up.reshape((hs * f, ws * f) + a.shape[2:])[:h, :w]


def _smooth_on(values, mask, sigma):
    """Normalised Gaussian average of ``values`` (H, W, C; only read on ``mask``) over ``mask``,
    evaluated everywhere (zero far from the mask); on cells of up to 8 texels when ``sigma`` is
    large (the result is smooth)."""
    h, w = mask.shape
    f = int(max(1, min(8, sigma // 4)))
    v = np.zeros(mask.shape + values.shape[2:], np.float32)
    _copy_where(v, np.asarray(values, np.float32), mask)
    mf = mask.astype(np.float32)
    if f > 1:  # box means: the ratio num / den is unchanged
        v, mf = _cell_mean(v, f), _cell_mean(mf, f)
    s = sigma / f
    num = cv2.GaussianBlur(v, (0, 0), s, borderType=cv2.BORDER_CONSTANT).reshape(v.shape)
    den = cv2.GaussianBlur(mf, (0, 0), s, borderType=cv2.BORDER_CONSTANT)
    out = num / np.maximum(den, 1e-6)[..., None]
    out[den < 1e-4] = 0.0
    return _upsample(out, f, h, w) if f > 1 else out


def _harmonic_extension(h_core, core, band, domain, pairs, f, config):
    """``(S, S, C)`` field equal to ``h_core`` on ``core``, harmonic on ``band`` (zero flux at chart
    borders, coupled across seams), 0 elsewhere -- i.e. the Poisson blend of the bank with its own
    gradients as guidance, written as a correction.  Solved on ``f x f`` cells when ``f > 1``."""
    h, w = core.shape
    if f <= 1:
        target = np.where(core[..., None], h_core, 0.0).astype(np.float32)
        out, info = poisson_blend(np.zeros_like(target), target, band, domain=domain, seam_pairs=pairs,
                                  config=config, return_info=True)
        return np.where(band[..., None], out, 0.0).astype(np.float32), info
    ws = -(-w // f)
    frac_core = _cell_mean(core, f)
    core_c = frac_core >= 0.5
    band_c = (_cell_mean(band, f) > 0) & ~core_c
    dom_c = core_c | band_c | (_cell_mean(domain, f) >= 0.5)
    hc = np.zeros(core.shape + h_core.shape[2:], np.float32)
    _copy_where(hc, h_core, core)
    tgt_c = np.where(core_c[..., None], _cell_mean(hc, f) / np.maximum(frac_core, 1e-6)[..., None], 0.0)
    pairs_c = None
    if pairs is not None and pairs.size:
        r, col = np.divmod(pairs, w)
        pc = (r // f) * ws + col // f
        pc = np.sort(pc[pc[:, 0] != pc[:, 1]], axis=1)
        if pc.size:
            rc, cc = np.divmod(pc, ws)
            far = (np.abs(rc[:, 0] - rc[:, 1]) + np.abs(cc[:, 0] - cc[:, 1])) > 1  # not grid neighbours
            pairs_c = np.unique(pc[far], axis=0)
    tgt_c = tgt_c.astype(np.float32)
    # the coarse system is small: a direct factorisation beats multigrid up to ~60K unknowns
    cfg = dataclasses.replace(config, direct_max=max(config.direct_max, 60_000))
    sol, info = poisson_blend(np.zeros_like(tgt_c), tgt_c, band_c, domain=dom_c, seam_pairs=pairs_c,
                              config=cfg, return_info=True)
    sol[~(band_c | core_c)] = 0.0
    info["method"] = f"coarse {f}x: {info['method']}"
    return _upsample(sol, f, h, w), info


def band_blend(photo, bank, core, domain, *, width: float, sigma: float, feather: float, seam_pairs=None,
               coarse: int = 1, config: PoissonConfig = PoissonConfig()):
    """Blend ``photo`` (valid on ``core``) into ``bank`` with the correction confined to a band.

    Args:
      photo: ``(S, S, 3)`` float, the projected photo (used on ``core`` only).
      bank: ``(S, S, 3)`` float, the bank texture (already recoloured to the face's tone).
      core: ``(S, S) bool`` texels taken from the photo.
      domain: ``(S, S) bool`` texels that exist (UV charts).
      width: band width in texels (bank side).
      sigma: smoothing of the border mismatch along the border, texels (0: none).
      feather: width of the photo-side feather in texels (0: none).
      seam_pairs: ``(P, 2)`` flat texel pairs across UV seams (:func:`~.seams.seam_pairs`) or None.
      coarse: solve the band's correction on cells of ``coarse x coarse`` texels and upsample it
        bilinearly (it is harmonic with smooth border data, hence smooth: 4 at 2048 is ~10x cheaper).
      config: :class:`~.poisson.PoissonConfig` of the band solve (on coarse cells, systems of up to
        60,000 unknowns are factorised directly).

    Returns:
      ``(out (S, S, 3) float32, info)``: the photo inside ``core`` (feathered at its border), the
      adapted bank in the band, the bank elsewhere; ``info`` from :func:`~.poisson.poisson_blend`
      plus ``band`` (the solved texels, ``(S, S) bool``).
    """
    photo = np.ascontiguousarray(photo, np.float32)
    bank = np.ascontiguousarray(bank, np.float32)
    if photo.shape != bank.shape or photo.ndim != 3:
        raise ValueError(f"photo and bank must have the same (S, S, C) shape, got {photo.shape} and {bank.shape}")
    core = np.asarray(core, bool)
    dom = np.asarray(domain, bool)
    if core.shape != photo.shape[:2] or dom.shape != photo.shape[:2]:
        raise ValueError(f"core and domain must have shape {photo.shape[:2]}")
    if width < 0 or sigma < 0 or feather < 0:
        raise ValueError(f"width, sigma and feather must be >= 0, got {width}, {sigma}, {feather}")
    if int(coarse) < 1:
        raise ValueError(f"coarse must be >= 1, got {coarse}")
    core = core & dom
    outside = dom & ~core
    out = bank.copy()
    _copy_where(out, photo, core)
    if not core.any() or not outside.any():
        return out, {"method": None, "unknowns": 0, "iterations": 0, "residual": 0.0, "converged": True,
                     "band": np.zeros(core.shape, bool)}
    h, w = core.shape
    # distance of core texels to the bank side (chart borders without a bank texel do not count)
    dist_in = cv2.distanceTransform((~outside).astype(np.uint8), cv2.DIST_L2, 5)
    ring = core & (dist_in <= max(float(feather), 2.0))
    # band: bank texels within `width` of the core or of the core's partners across UV seams
    seed = core.ravel().copy()
    pairs = None if seam_pairs is None else np.asarray(seam_pairs, np.int64).reshape(-1, 2)
    if pairs is not None and pairs.size:
        touch = pairs[seed[pairs[:, 0]] | seed[pairs[:, 1]]]
        seed[touch.ravel()] = True
    dist_out = cv2.distanceTransform((~seed.reshape(h, w)).astype(np.uint8), cv2.DIST_L2, 5)
    band = outside & (dist_out <= float(width))
    # everything below happens in the box around the band, the ring (plus the smoothing's reach)
    # and the band's seam partners; the box is aligned to the coarse cells
    f = int(coarse)
    used = band | ring
    r, c = np.flatnonzero(used.any(axis=1)), np.flatnonzero(used.any(axis=0))  # only the extent is needed
    if pairs is not None and pairs.size:
        bflat = band.ravel()
        pb = pairs[bflat[pairs[:, 0]] | bflat[pairs[:, 1]]].ravel()
        pr, pc = np.divmod(pb, w)
        r, c = np.concatenate([r, pr]), np.concatenate([c, pc])
    m = int(np.ceil(3 * sigma)) + 2 * f + 2
    r0, c0 = max(0, (r.min() - m) // f * f), max(0, (c.min() - m) // f * f)
    r1, c1 = min(h, r.max() + 1 + m), min(w, c.max() + 1 + m)
    box = (slice(r0, r1), slice(c0, c1))
    bw = c1 - c0
    pairs_box = None
    if pairs is not None and pairs.size:
        pr, pc = np.divmod(pairs, w)
        inside = ((pr >= r0) & (pr < r1) & (pc >= c0) & (pc < c1)).all(axis=1)
        pairs_box = (pr[inside] - r0) * bw + (pc[inside] - c0)
    ph, bk, co, ri, ba, di = photo[box], bank[box], core[box], ring[box], band[box], dist_in[box]
    # the correction the bank needs at the core's border, smoothed along the border
    if sigma > 0:
        diff = np.zeros_like(ph)
        _subtract_where(diff, ph, bk, ri)
        h_core = _smooth_on(diff, ri, float(sigma))
    else:
        h_core = ph - bk
    h_band, info = _harmonic_extension(h_core, co, ba, dom[box], pairs_box, f, config)
    ob = out[box]
    _add_where(ob, h_band, ba)
    if feather > 0 and sigma > 0:  # photo -> bank + smoothed correction over the feather
        fz = np.nonzero(co & (di < float(feather)))  # a thin ring: index it once
        t = di[fz] / float(feather)
        t = (t * t * (3.0 - 2.0 * t))[:, None]
        p = ph[fz]
        ob[fz] = p + (1.0 - t) * (bk[fz] + h_core[fz] - p)
    info["band"] = band
    return out, info
