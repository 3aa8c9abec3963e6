"""Texture fidelity metrics (issue 19): does the avatar's diffuse map look like the photo?

Three measurements, each a plain function of arrays:

* **re-render** (:func:`rerender_scores`): the head mesh is drawn with its diffuse map from the
  fitted camera, texture only (no shading: :func:`digitaltwin_jax.render.render_mesh` with
  ``ambient=1, diffuse=0``), and compared with the photo by :func:`psnr` and :func:`ssim` inside the
  face (:func:`face_compare_mask`: hull of the 68 landmarks minus the eyes and the inner mouth).  A
  texture projected from the photo and drawn back from the same camera should reproduce it.
* **albedo recovery** (:func:`albedo_scores`): UV-space error of a recovered diffuse map against a
  known albedo map (synthetic renders), where the photo saw the head; also after the best
  per-channel gain in linear light (an albedo is only recoverable up to the exposure and light
  colour), which isolates shading left in the map.
* **seam visibility** (:func:`seam_scores`): colour and gradient jumps across the border between
  the region taken from the photo and the bank, against the same statistics across contours inside
  either region (a seam is invisible when the ratio is about 1).

Images and maps are float in [0, 1] (or uint8), ``(H, W, 3)``; errors are reported in 8-bit levels
(``255 * |a - b|``) and dB.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.render.colorspace import linear_to_srgb, srgb_to_linear
from digitaltwin_jax.render.renderer import render_mesh

__all__ = ["psnr", "ssim", "face_compare_mask", "rerender_texture", "rerender_scores", "RerenderScores",
           "albedo_scores", "AlbedoScores", "seam_scores", "SeamScores"]

# iBUG 68 point groups (0-based)
_RIGHT_EYE = slice(36, 42)
_LEFT_EYE = slice(42, 48)
_INNER_MOUTH = slice(60, 68)


def _as_float(a, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float, got {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains non-finite values")
    return a


def _pair(a, b, mask):
    a, b = _as_float(a, "a"), _as_float(b, "b")
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"a and b must have the same (H, W[, C]) shape, got {a.shape} and {b.shape}")
    if mask is None:
        mask = np.ones(a.shape[:2], bool)
    mask = np.asarray(mask, bool)
    if mask.shape != a.shape[:2]:
        raise ValueError(f"mask must have shape {a.shape[:2]}, got {mask.shape}")
    if not mask.any():
        raise ValueError("mask is empty")
    return a, b, mask


def psnr(a, b, mask=None, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(peak^2 / MSE)`` in dB over the pixels of ``mask``.

    Args:
      a, b: ``(H, W)`` or ``(H, W, C)`` float in [0, 1] or uint8 (scaled to [0, 1]).
      mask: ``(H, W) bool`` pixels to use (default all); the MSE averages all channels.
      peak: the signal peak (1 for [0, 1] images).

    Returns:
      dB (``inf`` for identical images).
    """
    a, b, mask = _pair(a, b, mask)
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def ssim(a, b, mask=None, *, peak: float = 1.0, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> float:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) with a Gaussian window.

    The SSIM map ``(2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    (window moments by a Gaussian of standard deviation ``sigma`` truncated at round(3.5 sigma) -- 11 taps
    for 1.5 --, population covariances, ``C1 = (k1 peak)^2``, ``C2 = (k2 peak)^2``; replicated
    borders) is averaged over the channels and then over the pixels of ``mask``.

    Args:
      a, b: ``(H, W)`` or ``(H, W, C)`` float in [0, 1] or uint8.
      mask: ``(H, W) bool`` pixels whose SSIM values are averaged (default all).

    Returns:
      mean SSIM in [-1, 1] (1 for identical images).
    """
    a, b, mask = _pair(a, b, mask)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    half = int(3.5 * sigma + 0.5)

    def blur(x):
        return cv2.GaussianBlur(x, (2 * half + 1, 2 * half + 1), sigma, borderType=cv2.BORDER_REPLICATE)

    vals = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = blur(x), blur(y)
        sxx = blur(x * x) - mx * mx
        syy = blur(y * y) - my * my
        sxy = blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(m[mask])
    return float(np.mean(vals))


def face_compare_mask(landmarks, image_size) -> np.ndarray:
    """``(H, W) bool`` face region for comparisons: the convex hull of the 68 iBUG landmarks minus the
    two eye polygons (points 36-41, 42-47) and the inner mouth (60-67), drawn with ``cv2.fillPoly``.

    Args:
      landmarks: ``(68, 2)`` pixels, x = column, y = row, origin at the top-left pixel corner (the
        front end's convention); pixel ``(i, j)`` is inside when its centre is.
      image_size: ``(h, w)``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be finite (68, 2), got shape {lm.shape}")
    h, w = (int(s) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")

    def poly(p):  # corner-origin -> OpenCV pixel-centre coordinates, 2 fractional bits
        return np.round((p - 0.5) * 4).astype(np.int32)

    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(lm.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    cv2.fillPoly(mask, [poly(hull)], 1, shift=2)
    cv2.fillPoly(mask, [poly(lm[_RIGHT_EYE]), poly(lm[_LEFT_EYE]), poly(lm[_INNER_MOUTH])], 0, shift=2)
    return mask.astype(bool)


def rerender_texture(vertices_cam, faces, K, image_size, uvs, uv_faces, texture):
    """Draw the textured mesh from the camera, texture only (no shading).

    Args:
      vertices_cam: ``(V, 3)`` camera-frame vertices (``R p + t``, mm); faces ``(F, 3)``.
      K: ``(3, 3)`` intrinsics; image_size ``(h, w)``.
      uvs: ``(T, 2)`` OBJ UVs; uv_faces ``(F, 3)``; texture ``(S, S, 3)`` float [0, 1] or uint8.

    Returns:
      ``(image (h, w, 3) float32, coverage (h, w) float32)`` from :func:`~digitaltwin_jax.render.render_mesh`
      (one sample per pixel centre, bilinear texture lookup).
    """
    return render_mesh(vertices_cam, faces, K, image_size, uvs=uvs, uv_faces=uv_faces, texture=texture,
                       ambient=1.0, diffuse=0.0, specular=0.0, supersample=1)


@dataclasses.dataclass(frozen=True)
class RerenderScores:
    """Result of :func:`rerender_scores`.

    Attributes:
      psnr: dB inside the face mask; ssim: mean SSIM there.
      pixels: number of compared pixels.
      bias: ``(3,)`` mean signed difference render - photo in 8-bit levels (R, G, B).
      render: ``(h, w, 3) float32`` the re-render; mask: ``(h, w) bool`` compared pixels.
    """

    psnr: float
    ssim: float
    pixels: int
    bias: np.ndarray
    render: np.ndarray
    mask: np.ndarray


def rerender_scores(photo, vertices_cam, faces, K, uvs, uv_faces, texture, landmarks) -> RerenderScores:
    """Re-render PSNR / SSIM of a textured head against its photo inside the face.

    Args:
      photo: ``(h, w, 3)`` uint8 or float [0, 1]; landmarks ``(68, 2)`` in its pixels.
      vertices_cam, faces, K, uvs, uv_faces, texture: see :func:`rerender_texture`.

    Returns:
      :class:`RerenderScores` over :func:`face_compare_mask` & full coverage by the mesh.
    """
    ph = _as_float(photo, "photo")
    if ph.ndim != 3 or ph.shape[2] != 3:
        raise ValueError(f"photo must be (H, W, 3), got {ph.shape}")
    img, cover = rerender_texture(vertices_cam, faces, K, ph.shape[:2], uvs, uv_faces, texture)
    mask = face_compare_mask(landmarks, ph.shape[:2]) & (cover >= 1.0)
    if not mask.any():
        raise ValueError("the face mask and the rendered head do not overlap")
    bias = 255.0 * (img[mask].astype(np.float64) - ph[mask]).mean(axis=0)
    return RerenderScores(psnr=psnr(img, ph, mask), ssim=ssim(img, ph, mask), pixels=int(mask.sum()),
                          bias=bias, render=img, mask=mask)


@dataclasses.dataclass(frozen=True)
class AlbedoScores:
    """Result of :func:`albedo_scores` (errors over the region, sRGB).

    Attributes:
      psnr: dB; mae: mean absolute error in 8-bit levels.
      gain: ``(3,)`` the least-squares per-channel gain in linear light that best maps the estimate
        onto the truth; psnr_gain, mae_gain: the same errors after applying it.
      texels: number of compared texels.
    """

    psnr: float
    mae: float
    gain: np.ndarray
    psnr_gain: float
    mae_gain: float
    texels: int


def albedo_scores(estimate, truth, region) -> AlbedoScores:
    """Error of a recovered sRGB diffuse map against the true albedo map in the texels of ``region``.

    Args:
      estimate: ``(S, S, 3)`` float [0, 1] or uint8 sRGB (the recovered map).
      truth: ``(s, s, 3)`` float or uint8 sRGB; resized to ``S`` (area / linear) when ``s != S``.
      region: ``(S, S) bool`` texels to compare (e.g. where the photo saw the head).

    Returns:
      :class:`AlbedoScores`.  The gain ``g_c = sum(e_c t_c) / sum(e_c^2)`` is fitted in linear light
      (``e``, ``t``: decoded estimate and truth) and the gained estimate is re-encoded to sRGB.
    """
    est = _as_float(estimate, "estimate")
    tru = _as_float(truth, "truth")
    if est.ndim != 3 or est.shape[2] != 3 or tru.ndim != 3 or tru.shape[2] != 3:
        raise ValueError(f"estimate and truth must be (S, S, 3), got {est.shape} and {tru.shape}")
    if tru.shape[:2] != est.shape[:2]:
        interp = cv2.INTER_AREA if tru.shape[0] > est.shape[0] else cv2.INTER_LINEAR
        tru = cv2.resize(tru, (est.shape[1], est.shape[0]), interpolation=interp)
    est, tru, region = _pair(est, tru, region)
    e, t = est[region], tru[region]
    el, tl = srgb_to_linear(e).astype(np.float64), srgb_to_linear(t).astype(np.float64)
    gain = (el * tl).sum(axis=0) / np.maximum((el * el).sum(axis=0), 1e-12)
    eg = linear_to_srgb(el * gain).astype(np.float64)

    def _psnr(x):
        mse = float(np.mean((x - t) ** 2))
        return float("inf") if mse == 0 else float(-10.0 * np.log10(mse))

    return AlbedoScores(psnr=_psnr(e), mae=float(255.0 * np.abs(e - t).mean()), gain=gain,
                        psnr_gain=_psnr(eg), mae_gain=float(255.0 * np.abs(eg - t).mean()),
                        texels=int(region.sum()))


@dataclasses.dataclass(frozen=True)
class SeamScores:
    """Result of :func:`seam_scores` (8-bit levels, RGB Euclidean norm).

    Attributes:
      colour_jump: mean over the border texels of ``|mu_A - mu_B|``, the local means (box of side
        ``2 radius + 1``) of the region's texels and of the bank's texels around the texel.
      colour_inside, colour_outside: the same statistic across the contour at distance
        ``2 radius + 1`` inside the region (resp. inside the bank), computed within that side only.
      gradient_jump: mean ``|f_p - f_q|`` over 4-neighbour pairs p in the region, q in the bank.
      gradient_inside, gradient_outside: the same across the reference contours.
      border_texels: number of border texels.
    """

    colour_jump: float
    colour_inside: float
    colour_outside: float
    gradient_jump: float
    gradient_inside: float
    gradient_outside: float
    border_texels: int

    @property
    def colour_ratio(self) -> float:
        """``colour_jump`` over the mean of the two reference statistics (about 1: no visible seam)."""
        return self.colour_jump / max(0.5 * (self.colour_inside + self.colour_outside), 1e-9)

    @property
    def gradient_ratio(self) -> float:
        """``gradient_jump`` over the mean of the two reference statistics."""
        return self.gradient_jump / max(0.5 * (self.gradient_inside + self.gradient_outside), 1e-9)


def _crossing(tex, a, b):
    """Border texels of ``a`` toward ``b`` and the RGB norm of every 4-neighbour difference a -> b."""
    diffs = []
    border = np.zeros(a.shape, bool)
    for dy, dx in ((0, 1), (1, 0)):
        h, w = a.shape
        p = (slice(0, h - dy), slice(0, w - dx))
        q = (slice(dy, h), slice(dx, w))
        for s, t in ((p, q), (q, p)):
            e = a[s] & b[t]
            if e.any():
                diffs.append(np.linalg.norm(tex[s][e] - tex[t][e], axis=1))
                border[s] |= e
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    return border, d


def _jump(tex, a, b, radius):
    """(mean colour jump at the border of a toward b, mean neighbour difference, border count)."""
    border, d = _crossing(tex, a, b)
    if not border.any():
        return float("nan"), float("nan"), 0
    k = (2 * radius + 1, 2 * radius + 1)

    def local_mean(m):
        mf = m.astype(np.float64)
        cnt = cv2.boxFilter(mf, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
        s = cv2.boxFilter(tex * mf[..., None], -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
        return s[border] / np.maximum(cnt[border], 1e-12)[:, None]

    jump = np.linalg.norm(local_mean(a) - local_mean(b), axis=1)
    return float(255.0 * jump.mean()), float(255.0 * d.mean()), int(border.sum())


def seam_scores(texture, region, domain=None, *, radius: int = 4) -> SeamScores:
    """Visibility of the border between ``region`` (texels from the photo) and the rest of ``domain``.

    Args:
      texture: ``(S, S, 3)`` float [0, 1] or uint8.
      region: ``(S, S) bool`` texels taken from the photo (e.g. ``TextureResult.blend_mask``).
      domain: ``(S, S) bool`` texels that exist (UV charts); default all.  The bank is
        ``domain & ~region``.
      radius: half side of the local-mean box (texels); the reference contours lie ``2 radius + 1``
        texels inside either side.

    Returns:
      :class:`SeamScores` (see its attributes; for a straight border and a linear ramp of slope g
      every colour statistic is ``g (radius + 1/2)`` and every gradient statistic is ``g``, so the
      ratios are 1; for a constant map with a step of height h at the border, the jumps are h and
      the references 0).
    """
    tex = _as_float(texture, "texture")
    if tex.ndim != 3:
        raise ValueError(f"texture must be (S, S, C), got {tex.shape}")
    region = np.asarray(region, bool)
    dom = np.ones(region.shape, bool) if domain is None else np.asarray(domain, bool)
    if region.shape != tex.shape[:2] or dom.shape != tex.shape[:2]:
        raise ValueError(f"region and domain must have shape {tex.shape[:2]}")
    if int(radius) < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    radius = int(radius)
    a = region & dom
    b = dom & ~region
    if not a.any() or not b.any():
        raise ValueError("region and the rest of the domain must both be non-empty")
    # distance (texels) of every texel to the nearest texel of the other side
    dist_b = cv2.distanceTransform((~b).astype(np.uint8), cv2.DIST_L2, 5)
    dist_a = cv2.distanceTransform((~a).astype(np.uint8), cv2.DIST_L2, 5)
    off = 2 * radius + 1
    a_in = a & (dist_b > off)
    b_out = b & (dist_a > off)
    cj, gj, n = _jump(tex, a, b, radius)
    # reference contours (the boxes around them hold texels of one side only)
    nan = (float("nan"), float("nan"), 0)
    ci, gi, _ = _jump(tex, a_in, a & ~a_in, radius) if a_in.any() else nan
    co, go, _ = _jump(tex, b_out, b & ~b_out, radius) if b_out.any() else nan
    return SeamScores(colour_jump=cj, colour_inside=ci, colour_outside=co, gradient_jump=gj,
                      gradient_inside=gi, gradient_outside=go, border_texels=n)
