"""Colour transfer functions and light colours for physically-based shading in linear space (used by
the synthetic-image engine, paper section 3.2: the renders are shaded in linear light and written in
sRGB, like a camera's output).

* :func:`linear_to_srgb` / :func:`srgb_to_linear`: the IEC 61966-2-1 (sRGB) transfer function,
  ``c_srgb = 12.92 c`` for ``c <= 0.0031308``, else ``1.055 c^(1/2.4) - 0.055`` (and its inverse with
  the threshold 0.04045);
* :func:`blackbody_rgb`: the linear-sRGB colour of a black body at a colour temperature (Planck's law
  integrated against the CIE 1931 2-degree colour-matching functions in the analytic multi-lobe fit of
  Wyman, Sloan & Shirley 2013, JCGT 2(2)), normalised to unit luminance.

Arrays are float (any shape); results float32.
"""
from __future__ import annotations

import numpy as np

__all__ = ["linear_to_srgb", "srgb_to_linear", "srgb_to_linear_lut", "linear_to_srgb8", "to_uint8",
           "blackbody_rgb", "XYZ_TO_LINEAR_SRGB"]

# CIE XYZ (D65) -> linear sRGB (IEC 61966-2-1).
XYZ_TO_LINEAR_SRGB = np.array(
    [[3.2404542, -1.5371385, -0.4985314],
     [-0.9692660, 1.8760108, 0.0415560],
     [0.0556434, -0.2040259, 1.0572252]]
)


def linear_to_srgb(x) -> np.ndarray:
    """Encode linear values with the sRGB transfer function (input clipped to [0, 1]); float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    lo = x * np.float32(12.92)
    hi = np.float32(1.055) * np.power(np.maximum(x, np.float32(0.0031308)), np.float32(1.0 / 2.4)) - np.float32(0.055)
    return np.where(x <= np.float32(0.0031308), lo, hi).astype(np.float32)


def srgb_to_linear(x) -> np.ndarray:
    """Decode sRGB-encoded values (clipped to [0, 1]) to linear light; float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    lo = x / np.float32(12.92)
    hi = np.power((x + np.float32(0.055)) / np.float32(1.055), np.float32(2.4))
    return np.where(x <= np.float32(0.04045), lo, hi).astype(np.float32)


def srgb_to_linear_lut() -> np.ndarray:
    """``(256,) float32`` linear value of every 8-bit sRGB code (``lut[uint8_image]`` decodes)."""
    return srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


_ENCODE_LEVELS = 1 << 16
_ENCODE_LUT: list = []


def linear_to_srgb8(x) -> np.ndarray:
    """Fast sRGB encoding straight to uint8: linear values (clipped to [0, 1]) are quantised to
    65,536 levels and looked up in a table of ``round(255 * linear_to_srgb(level))``.  Off by at most
    one code from ``to_uint8(linear_to_srgb(x))`` (ties and the quantisation near 0), ~10x faster."""
    if not _ENCODE_LUT:
        lv = np.arange(_ENCODE_LEVELS, dtype=np.float64) / (_ENCODE_LEVELS - 1)
        enc = np.where(lv <= 0.0031308, 12.92 * lv, 1.055 * np.power(lv, 1 / 2.4) - 0.055)
        _ENCODE_LUT.append(np.clip(np.rint(enc * 255.0), 0, 255).astype(np.uint8))
    x = np.asarray(x, dtype=np.float32)
    idx = np.clip(x * np.float32(_ENCODE_LEVELS - 1) + np.float32(0.5), 0, _ENCODE_LEVELS - 1).astype(np.int32)
    return _ENCODE_LUT[0][idx]


def to_uint8(x) -> np.ndarray:
    """Values in [0, 1] (clipped) to uint8 with rounding."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _cie_xyz_bar(lam_nm):
    """CIE 1931 2-degree colour-matching functions, multi-lobe Gaussian fit (Wyman et al. 2013)."""
    lam = np.asarray(lam_nm, dtype=np.float64)

    def g(mu, s1, s2):
        s = np.where(lam < mu, s1, s2)
        return np.exp(-0.5 * ((lam - mu) / s) ** 2)

    x = 1.056 * g(599.8, 37.9, 31.0) + 0.362 * g(442.0, 16.0, 26.7) - 0.065 * g(501.1, 20.4, 26.2)
    y = 0.821 * g(568.8, 46.9, 40.5) + 0.286 * g(530.9, 16.3, 31.1)
    z = 1.217 * g(437.0, 11.8, 36.0) + 0.681 * g(459.0, 26.0, 13.8)
    return np.stack([x, y, z], axis=-1)


def blackbody_rgb(kelvin) -> np.ndarray:
    """Linear-sRGB colour of a black body at ``kelvin`` (scalar or ``(...)``), luminance Y = 1.

    Returns ``(..., 3) float32``; channels can exceed 1 (or be slightly negative far outside the sRGB
    gamut, below ~1500 K: clipped at 0).  6504 K gives approximately (1, 1, 1).
    """
    t = np.asarray(kelvin, dtype=np.float64)
    if not np.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"colour temperature must be positive and finite, got {kelvin}")
    lam = np.arange(380.0, 781.0, 5.0)  # nm
    cmf = _cie_xyz_bar(lam)  # (L, 3)
    lam_m = lam * 1e-9
    c2 = 1.4387769e-2  # m K
    spd = 1.0 / (lam_m**5 * np.expm1(c2 / (lam_m * t[..., None])))  # (..., L), arbitrary scale
    xyz = spd @ cmf  # (..., 3)
    xyz = xyz / xyz[..., 1:2]
    rgb = xyz @ XYZ_TO_LINEAR_SRGB.T
    # Normalise so that 6504 K (D65's correlated temperature) maps to ~white.
    ref = _blackbody_ref()
    rgb = rgb / ref
    rgb = rgb / (rgb @ np.array([0.2126, 0.7152, 0.0722]))[..., None]
    return np.maximum(rgb, 0.0).astype(np.float32)


def _blackbody_ref():
    lam = np.arange(380.0, 781.0, 5.0)
    cmf = _cie_xyz_bar(lam)
    lam_m = lam * 1e-9
    spd = 1.0 / (lam_m**5 * np.expm1(1.4387769e-2 / (lam_m * 6504.0)))
    xyz = spd @ cmf
    return (xyz / xyz[1]) @ XYZ_TO_LINEAR_SRGB.T
