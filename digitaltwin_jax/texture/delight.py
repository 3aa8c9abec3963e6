"""De-lighting of the projected photo (issue 19): estimate the photo's low-frequency lighting as
spherical harmonics of the fitted surface normal and divide it out of the projected colours.

Model (linear light, per channel c): ``I_c(p) = rho_c(p) * S_c(n_p)`` with the shading
``S_c(n) = sum_k L_kc Y_k(n)`` over the real spherical harmonics up to ``order`` (2: 9 functions,
which hold ~99% of the energy of any Lambertian irradiance; Ramamoorthi & Hanrahan 2001).  With the
albedo taken as constant over the face (``rho_c = rho``), ``rho L_kc`` is found by weighted least
squares on the confidently seen texels; iteratively reweighted (texels whose residual exceeds
``trim`` robust standard deviations get weight 0: brows, lips, hair strands, specular highlights).
The de-lit colour is ``I_c(p) * s_c / S_c(n_p)`` with ``s_c`` the median shading over the fitted
texels (so the map keeps the photo's exposure and white balance; only the *relative* shading is
removed), and ``S`` is clamped below at ``min_shading * s_c`` (shadowed texels are amplified at
most 2x by default: on the example photo 0.3 let the far cheek, seen at a grazing angle, turn
yellow-bright; on the synthetic albedo benchmark 0.3 and 0.5 differ by 0.35 dB).  By default the
shading is achromatic (its luminance divides every channel).

Normals are in the camera frame (the frame the photo was lit in); colours are sRGB in [0, 1],
decoded with the IEC 61966-2-1 curve before the division and re-encoded after.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.render.colorspace import linear_to_srgb, srgb_to_linear

__all__ = ["DelightConfig", "SHShading", "sh_basis", "fit_sh_shading", "estimate_shading", "delight_colors"]

_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 / sRGB luminance of linear RGB
# normalisation constants of the real spherical harmonics in the order of :func:`sh_basis`
_SH_CONST = np.array([0.282095, 0.488603, 0.488603, 0.488603, 1.092548, 1.092548, 0.315392, 1.092548, 0.546274])


@dataclasses.dataclass(frozen=True)
class DelightConfig:
    """Settings of :func:`delight_colors`.

    Attributes:
      order: spherical-harmonic order (0: constant, 1: 4 functions, 2: 9 functions).
      iterations: reweighting rounds of the robust fit.
      trim: residual cut in robust standard deviations (1.4826 MAD).
      min_shading: lower clamp of the relative shading ``S / s``.
      min_confidence: texels with at least this confidence take part in the fit.
      achromatic: divide all channels by the luminance of the fitted shading (the light's colour
        stays in the map, as white balance does; per-channel division tints where the fit extrapolates).
      max_samples: the fit uses at most about this many evenly strided texels.
    """

    order: int = 2
    iterations: int = 4
    trim: float = 2.5
    min_shading: float = 0.5
    min_confidence: float = 0.3
    achromatic: bool = True
    max_samples: int = 30_000

    def __post_init__(self):
        if self.order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {self.order}")
        if self.iterations < 1 or self.trim <= 0 or not 0 < self.min_shading <= 1:
            raise ValueError("iterations >= 1, trim > 0 and 0 < min_shading <= 1 are required")


def sh_basis(normals, order: int = 2) -> np.ndarray:
    """Real spherical harmonics ``(N, (order + 1)^2) float64`` of unit vectors ``(N, 3)``
    (standard normalisation: ``Y_00 = 0.282095``, ``Y_1m = 0.488603 (y, z, x)``, ...)."""
    n = np.asarray(normals, np.float64)
    if n.ndim != 2 or n.shape[1] != 3:
        raise ValueError(f"normals must be (N, 3), got {n.shape}")
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order}")
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    cols = [np.ones(len(n))]
    if order >= 1:
        cols += [y, z, x]
    if order >= 2:
        cols += [x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y]
    return np.stack(cols, axis=1) * _SH_CONST[: len(cols)]


def fit_sh_shading(colors_linear, normals, weights=None, *, order: int = 2, iterations: int = 4,
                   trim: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """Robust least-squares fit ``colors ~ Y(n) @ C`` (module docstring).

    Args:
      colors_linear: ``(N, 3)`` linear colours; normals ``(N, 3)`` unit; weights ``(N,)`` >= 0.

    Returns:
      ``(C ((order + 1)^2, 3) float64, used (N,) bool)``: coefficients (albedo times lighting) and
      the texels kept by the last round.
    """
    I = np.asarray(colors_linear, np.float64)
    Y = sh_basis(normals, order)
    if I.shape != (Y.shape[0], 3):
        raise ValueError(f"colors_linear must be ({Y.shape[0]}, 3), got {I.shape}")
    w = np.ones(len(I)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(I),):
        raise ValueError(f"weights must be ({len(I)},), got {w.shape}")
    if len(I) < Y.shape[1] * 4:
        raise ValueError(f"need at least {Y.shape[1] * 4} texels to fit order-{order} lighting, got {len(I)}")
    used = w > 0
    C = np.zeros((Y.shape[1], 3))
    for _ in range(int(iterations)):
        wu = (w * used)[:, None]
        A = Y.T @ (Y * wu)  # normal equations: 9 x 9
        C = np.linalg.solve(A + 1e-12 * np.trace(A) * np.eye(len(A)), Y.T @ (I * wu))
        r = np.linalg.norm(I - Y @ C, axis=1)
        med = np.median(r[used])
        mad = 1.4826 * np.median(np.abs(r[used] - med))
        used = (w > 0) & (r <= med + trim * max(mad, 1e-6))
    return C, used


@dataclasses.dataclass(frozen=True)
class SHShading:
    """A fitted shading (:func:`estimate_shading`).

    Attributes:
      coeffs: ``((order + 1)^2, 3) float64`` spherical-harmonic coefficients (albedo x lighting,
        linear light, camera frame).
      reference: ``(3,) float64`` median shading over the fitted texels.
      config: the :class:`DelightConfig` used.
      used: ``(M,) bool`` which of the fitted (strided) texels the robust fit kept.
    """

    coeffs: np.ndarray
    reference: np.ndarray
    config: DelightConfig
    used: np.ndarray

    def shading(self, normals) -> np.ndarray:
        """``(N, 3) float32`` shading ``S(n)`` of unit normals ``(N, 3)`` (achromatic: the luminance
        in every channel)."""
        n = np.asarray(normals, np.float32)
        if self.config.achromatic:
            s = _sh_eval(n, self.coeffs @ _LUMA)
            return np.repeat(s[:, None], 3, axis=1)
        return np.stack([_sh_eval(n, self.coeffs[:, c]) for c in range(3)], axis=1)

    def relative(self, normals) -> np.ndarray:
        """``(N, 3) float32`` relative shading ``max(S(n) / reference, min_shading)`` of unit normals."""
        rel = self.shading(normals) / np.maximum(self.reference, 1e-6).astype(np.float32)
        return np.maximum(rel, np.float32(self.config.min_shading))


def _sh_eval(n, c) -> np.ndarray:
    """``sum_k c_k Y_k(n)`` for ``(N, 3) float32`` unit normals without forming the basis matrix."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    c = np.asarray(c, np.float64) * _SH_CONST[: len(c)]
    s = np.full(len(n), np.float32(c[0]), np.float32)
    if len(c) > 1:
        s += np.float32(c[1]) * y + np.float32(c[2]) * z + np.float32(c[3]) * x
    if len(c) > 4:
        s += (np.float32(c[4]) * x + np.float32(c[5]) * z) * y + np.float32(c[6]) * (3 * z * z - 1)
        s += np.float32(c[7]) * x * z + np.float32(c[8]) * (x * x - y * y)
    return s


def _check(c, n, conf):
    if c.ndim != 2 or c.shape[1] != 3 or n.shape != c.shape or conf.shape != (len(c),):
        raise ValueError(f"colors (N, 3), normals (N, 3) and confidence (N,) expected, got {c.shape}, "
                         f"{n.shape}, {conf.shape}")


def _unit(n):
    n = np.asarray(n, np.float64)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def estimate_shading(colors_srgb, normals, confidence, config: DelightConfig = DelightConfig()) -> SHShading:
    """Fit the photo's low-frequency shading (module docstring).

    Args:
      colors_srgb: ``(N, 3)`` sRGB colours in [0, 1] of the projected texels.
      normals: ``(N, 3)`` their normals, camera frame (normalised here).
      confidence: ``(N,)`` projection confidence: the fit weight (below ``min_confidence``: left out).
      config: :class:`DelightConfig`.
    """
    c = np.asarray(colors_srgb, np.float32)
    n = np.asarray(normals, np.float64)
    conf = np.asarray(confidence, np.float64)
    _check(c, n, conf)
    w = np.where(conf >= config.min_confidence, conf, 0.0)
    fit = np.flatnonzero(w > 0)
    fit = fit[:: max(1, len(fit) // int(config.max_samples))]
    nf = _unit(n[fit])
    C, used = fit_sh_shading(srgb_to_linear(c[fit]), nf, w[fit], order=config.order,
                             iterations=config.iterations, trim=config.trim)
    model = SHShading(coeffs=C, reference=np.ones(3), config=config, used=used)
    ref = np.median(model.shading(nf[used]), axis=0)
    return dataclasses.replace(model, reference=ref)


def delight_colors(colors_srgb, normals, confidence, config: DelightConfig = DelightConfig()):
    """Remove the fitted low-frequency shading from projected colours.

    Args:
      colors_srgb, normals, confidence: see :func:`estimate_shading`.
      config: :class:`DelightConfig`.

    Returns:
      ``(delit (N, 3) float32 sRGB, shading (N, 3) float32, model)`` where ``shading`` is the
      relative shading that was divided out (``linear(colors) = linear(delit) * shading`` wherever
      nothing was clipped) and ``model`` the :class:`SHShading`.
    """
    model = estimate_shading(colors_srgb, normals, confidence, config)
    rel = model.relative(_unit(normals))
    return linear_to_srgb(srgb_to_linear(np.asarray(colors_srgb, np.float32)) / rel), rel, model
