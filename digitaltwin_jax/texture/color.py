"""Colour statistics transfer between texture maps (issue 19: the bank's neck, ears and scalp take the
tone of the observed face, so the photo keeps its own colours and only a narrow band adapts).

:func:`transfer_color` moves the robust colour statistics of one map over a region onto those of a
reference over the same region (Reinhard et al. 2001, "Color transfer between images", in CIELAB
instead of l-alpha-beta, with medians instead of means: lips, brows and hair strands in the region are
outliers): per Lab channel ``c``,

    out_c = (in_c - med_in_c) * k_c + med_ref_c,   k_c = clip(s_ref_c / s_in_c, *scale_limits),

with ``s`` the scaled median absolute deviation (1.4826 MAD, the standard deviation of a normal).  By
default ``scale_limits = (1, 1)`` (a shift only): the photo's spread includes its shading and
features, so matching it would exaggerate the bank's own variation (measured on the example photo:
re-render PSNR 30.3 dB with the shift, 28.4 dB with the spread matched as well, clipped to [0.5, 2]).

Maps are ``(H, W, 3)`` float sRGB in [0, 1]; Lab by OpenCV (D65, sRGB transfer function applied).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["transfer_color", "robust_lab_stats", "srgb_to_lab", "lab_to_srgb"]


def srgb_to_lab(rgb) -> np.ndarray:
    """``(..., 3)`` sRGB in [0, 1] -> CIELAB ``(..., 3) float32`` (L in [0, 100]; OpenCV, D65)."""
    a = np.ascontiguousarray(np.asarray(rgb, np.float32))
    if a.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) colours, got {a.shape}")
    flat = a.reshape(-1, 1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(a.shape)


def lab_to_srgb(lab) -> np.ndarray:
    """Inverse of :func:`srgb_to_lab` (result clipped to [0, 1]), ``float32``."""
    a = np.ascontiguousarray(np.asarray(lab, np.float32))
    if a.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) colours, got {a.shape}")
    out = cv2.cvtColor(a.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(a.shape)
    return np.clip(out, 0.0, 1.0)


def robust_lab_stats(values) -> tuple[np.ndarray, np.ndarray]:
    """``(median (3,), 1.4826 * MAD (3,))`` of ``(N, 3)`` Lab values."""
    v = np.asarray(values, np.float64).reshape(-1, 3)
    if v.shape[0] == 0:
        raise ValueError("no values")
    med = np.median(v, axis=0)
    return med, 1.4826 * np.median(np.abs(v - med), axis=0)


def transfer_color(image, reference, region, *, reference_region=None, apply=None, scale_limits=(1.0, 1.0),
                   min_texels: int = 100, max_samples: int = 200_000) -> np.ndarray:
    """Give ``image`` the robust Lab statistics of ``reference`` (module docstring).

    Args:
      image: ``(H, W, 3)`` float sRGB in [0, 1], the map to recolour (e.g. the bank texture).
      reference: ``(H', W', 3)`` float sRGB, the colours to match (e.g. the projected photo).
      region: ``(H, W) bool`` texels of ``image`` whose statistics are measured.
      reference_region: ``(H', W') bool`` texels of ``reference`` to measure (default ``region``).
      apply: ``(H, W) bool`` texels to recolour (default all; the others are returned unchanged).
      scale_limits: ``(lo, hi)`` clip of the per-channel spread ratio; ``(1, 1)`` shifts only.
      min_texels: fewer texels in either region returns ``image`` unchanged.
      max_samples: the statistics use at most about this many evenly strided texels per region.

    Returns:
      ``(H, W, 3) float32`` in [0, 1].
    """
    img = np.asarray(image, np.float32)
    ref = np.asarray(reference, np.float32)
    if img.ndim != 3 or img.shape[2] != 3 or ref.ndim != 3 or ref.shape[2] != 3:
        raise ValueError(f"image and reference must be (H, W, 3), got {img.shape} and {ref.shape}")
    region = np.asarray(region, bool)
    rref = region if reference_region is None else np.asarray(reference_region, bool)
    if region.shape != img.shape[:2] or rref.shape != ref.shape[:2]:
        raise ValueError("region / reference_region must match the maps' (H, W)")
    lo, hi = (float(x) for x in scale_limits)
    if not 0 < lo <= hi:
        raise ValueError(f"scale_limits must satisfy 0 < lo <= hi, got {scale_limits}")
    ref_values = ref[rref]  # gathered once: the finiteness check and the samples (~20 ms at 2048)
    if not (np.isfinite(img).all() and np.isfinite(ref_values).all()):
        raise ValueError("image and reference must be finite")
    if region.sum() < min_texels or len(ref_values) < min_texels:
        return img.copy()

    def strided(v):
        return v[:: max(1, len(v) // int(max_samples))]

    m_in, s_in = robust_lab_stats(srgb_to_lab(strided(img[region])))
    m_ref, s_ref = robust_lab_stats(srgb_to_lab(strided(ref_values)))
    k = np.clip(s_ref / np.maximum(s_in, 1e-6), lo, hi).astype(np.float32)
    shift = (m_ref - m_in * k).astype(np.float32)
    out = img.copy()
    if apply is None:
        return lab_to_srgb(srgb_to_lab(img) * k + shift)
    apply = np.asarray(apply, bool)
    if apply.shape != img.shape[:2]:
        raise ValueError(f"apply must have shape {img.shape[:2]}, got {apply.shape}")
    out[apply] = lab_to_srgb(srgb_to_lab(img[apply]) * k + shift)
    return out
