"""The skin model shared by the texture bank and the synthetic renderer (paper section 3.5: the areas
a selfie never sees are filled from a bank texture; section 3.2: every synthetic head wears a
diffuse map).  The paper uses scanned subjects for both; we ship no scans, so both use one documented
procedural skin model: one parameter set (:class:`SkinParams`), one convention for every parameter,
the tone palettes and the prior over parameters (:func:`sample_skin_params`) live here.  The two
bakers that turn parameters into a UV map read the same parameters:

* the texture bank's (:func:`digitaltwin_jax.texture.procedural.bake_procedural`, sRGB, Monk palette)
  reads ``tone, undertone, redness, lip_tint, hair_darkness, variation, seed``;
* the synthetic renderer's (:func:`digitaltwin_jax.synth.albedo.procedural_albedo`, linear RGB,
  anchor palette, lash line, stubble, scalp hair of a given colour) reads ``tone, undertone, redness,
  hair_color, hair, hairline, brow_density, stubble, seed``.

Conventions (both bakers): ``tone`` 0 (lightest) ... 1 (darkest); ``undertone`` -1 (cool, pink) ...
+1 (warm, yellow/olive): a larger undertone raises green minus blue of the base colour (yellowness)
in both palettes; ``redness`` 0 ... 1 (hemoglobin on cheeks and nose).

Base colour, two palettes (kept because the shipped texture bank and the synthetic training renders
of the shipped regressor and the cached fidelity sets were made with them; the merge changed neither
output):

* :func:`skin_base_color` (bank, sRGB): the Monk Skin Tone scale (10 swatches, Google, CC BY 4.0)
  linearly interpolated in sRGB at ``tone * 9``, times ``(1, 0.93, 0.88)`` (a swatch is a perceptual
  average; the albedo gets a little more chroma), plus ``|u| s (0.5 + mean(swatch))`` with
  ``s = (0.02, 0.01, -0.03)`` for ``u >= 0`` (warm) and ``(0.03, -0.02, 0)`` for ``u < 0`` (pink),
  clipped to [0, 1];
* :func:`skin_base_linear` (renders, linear RGB): five anchors (:data:`SKIN_TONE_ANCHORS`, very light
  to very dark, the middle ones near the Macbeth "light skin" / "dark skin" patches) converted to
  linear RGB and linearly interpolated at ``tone * 4``, times ``1 + |u| s`` with
  ``s = (-0.02, 0.02, -0.06)`` for ``u > 0`` (olive/yellow) and ``(0.04, -0.03, -0.01)`` for ``u <= 0``
  (pink).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.render.colorspace import srgb_to_linear

__all__ = ["SkinParams", "sample_skin_params", "skin_base_color", "skin_base_linear", "MONK_SKIN_TONES",
           "SKIN_TONE_ANCHORS", "HAIR_COLORS", "smoothstep", "segment_distance"]

# Monk Skin Tone scale, swatches 1 (lightest) to 10 (darkest), sRGB hex published by Google.
MONK_SKIN_TONES = np.array(
    [[0xF6, 0xED, 0xE4], [0xF3, 0xE7, 0xDB], [0xF7, 0xEA, 0xD0], [0xEA, 0xDA, 0xBA],
     [0xD7, 0xBD, 0x96], [0xA0, 0x7E, 0x56], [0x82, 0x5C, 0x43], [0x60, 0x41, 0x34],
     [0x3A, 0x31, 0x2A], [0x29, 0x24, 0x20]], dtype=np.float32) / 255.0
# Very light -> very dark skin, sRGB 8-bit (interpolated in linear RGB).
SKIN_TONE_ANCHORS = np.array(
    [[232, 190, 170], [200, 152, 128], [168, 118, 88], [118, 80, 60], [72, 48, 37]], dtype=np.float32
)
# Hair colours, sRGB 8-bit: black, dark brown, brown, light brown, blonde, red, grey.
HAIR_COLORS = np.array(
    [[22, 18, 16], [48, 34, 26], [85, 60, 42], [130, 98, 70], [185, 150, 105], [140, 70, 40],
     [150, 148, 145]], dtype=np.float32
)


@dataclasses.dataclass(frozen=True)
class SkinParams:
    """Parameters of one procedural skin (module docstring; which baker reads which in brackets).

    Attributes:
      tone: 0 (lightest) ... 1 (darkest).
      undertone: -1 (pink, cool) ... +1 (yellow/olive, warm).
      redness: cheek / nose redness (hemoglobin), 0 ... 1.
      lip_tint: strength of the lip colour, 0 ... 1 (bank).
      hair_darkness: darkening of brows and scalp, 0 ... 1 (bank).
      variation: amplitude of the low-frequency tone variation, fraction of the luminance (bank).
      seed: seed of the noise patterns.
      hair_color: ``(3,)`` sRGB 0-255 of brows and scalp hair (renders).
      hair: scalp hair present (renders).
      hairline: hairline height offset in degrees, + = receding (renders).
      brow_density: 0 ... 1 (renders).
      stubble: 0 (none) ... 1 (strong) (renders).
    """

    tone: float = 0.4
    undertone: float = 0.0
    redness: float = 0.3
    lip_tint: float = 0.6
    hair_darkness: float = 0.6
    variation: float = 0.06
    seed: int = 0
    hair_color: tuple[float, float, float] = (48.0, 34.0, 26.0)
    hair: bool = True
    hairline: float = 0.0
    brow_density: float = 0.8
    stubble: float = 0.0

    def as_array(self) -> np.ndarray:
        """``(7,) float64`` the bank's columns ``(tone, undertone, redness, lip_tint, hair_darkness,
        variation, seed)`` (the format of :func:`~digitaltwin_jax.texture.bank.save_bank`)."""
        return np.array([self.tone, self.undertone, self.redness, self.lip_tint, self.hair_darkness,
                         self.variation, self.seed], dtype=np.float64)

    @classmethod
    def from_array(cls, a) -> "SkinParams":
        """Inverse of :meth:`as_array` (the other fields take their defaults)."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"SkinParams.from_array needs the 7 bank columns, got shape {a.shape}")
        return cls(*(float(x) for x in a[:6]), seed=int(a[6]))


def sample_skin_params(rng: np.random.Generator, *, tone=None, hair_probability: float = 0.8) -> SkinParams:
    """Random :class:`SkinParams` for the synthetic renders: tone uniform in [0, 1] unless given,
    undertone uniform in [-1, 1], redness in [0.1, 0.8], hair colour from :data:`HAIR_COLORS` with
    tone-dependent odds (darker skin -> mostly black / dark brown hair), scalp hair with probability
    ``hair_probability``, hairline offset in [-6, 14] degrees, brow density in [0.5, 1], stubble in
    [0, 1] for a quarter of the draws (else 0).  The bank columns keep their defaults."""
    t = float(rng.uniform(0.0, 1.0)) if tone is None else float(tone)
    u = float(rng.uniform(-1.0, 1.0))
    red = float(rng.uniform(0.1, 0.8))
    # probabilities over HAIR_COLORS rows, shifted toward dark for darker tones
    light = max(0.0, 0.45 - t) / 0.45
    p = np.array([0.35 + 0.4 * (1 - light), 0.3, 0.15 + 0.1 * light, 0.1 * light, 0.12 * light,
                  0.04 * light, 0.06])
    p /= p.sum()
    k = int(rng.choice(len(HAIR_COLORS), p=p))
    hc = HAIR_COLORS[k] * rng.uniform(0.8, 1.2) * rng.uniform(0.96, 1.04, size=3)
    hair = bool(rng.random() < hair_probability)
    hairline = float(rng.uniform(-6.0, 14.0))
    brow = float(rng.uniform(0.5, 1.0))
    stubble = float(rng.uniform(0.0, 1.0)) if rng.random() < 0.25 else 0.0
    seed = int(rng.integers(0, 2**31 - 1))
    # the draw ``u`` is in the renderer's former convention (+ = pink); -u is the same skin in ours
    # (negation is exact, so the renders are unchanged)
    return SkinParams(tone=t, undertone=-u, redness=red, hair_color=tuple(float(c) for c in np.clip(hc, 0, 255)),
                      hair=hair, hairline=hairline, brow_density=brow, stubble=stubble, seed=seed)


def skin_base_color(tone: float, undertone: float = 0.0) -> np.ndarray:
    """``(3,) float32`` sRGB base skin colour of the bank palette (Monk scale; module docstring)."""
    t = float(np.clip(tone, 0.0, 1.0)) * (len(MONK_SKIN_TONES) - 1)
    i = min(int(t), len(MONK_SKIN_TONES) - 2)
    c = MONK_SKIN_TONES[i] * (1 - (t - i)) + MONK_SKIN_TONES[i + 1] * (t - i)
    u = float(np.clip(undertone, -1.0, 1.0))
    shift = np.where(u >= 0, np.array([0.02, 0.01, -0.03]), np.array([0.03, -0.02, 0.0])) * abs(u)
    # a swatch is a perceptual average; give the albedo a little more chroma (redness of blood)
    c = c * np.array([1.0, 0.93, 0.88]) + shift * (0.5 + c.mean())
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def skin_base_linear(tone: float, undertone: float = 0.0) -> np.ndarray:
    """``(3,) float32`` linear-RGB base skin colour of the render palette (anchors; module docstring)."""
    lin = srgb_to_linear(SKIN_TONE_ANCHORS / 255.0)
    x = np.clip(tone, 0, 1) * (len(lin) - 1)
    i = int(min(np.floor(x), len(lin) - 2))
    f = x - i
    c = lin[i] * (1 - f) + lin[i + 1] * f
    tilt = np.array([-0.02, 0.02, -0.06]) if undertone > 0 else np.array([0.04, -0.03, -0.01])
    return (c * (1.0 + abs(undertone) * tilt)).astype(np.float32)


def smoothstep(e0, e1, x):
    """Hermite step ``t^2 (3 - 2 t)``, ``t = clip((x - e0) / (e1 - e0), 0, 1)`` (``e1 < e0`` falls)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def segment_distance(p, a, b):
    """Distance of points ``p (N, D)`` to the segment ``a b`` (``(D,)`` each) and the parameter
    ``t (N,)`` in [0, 1] of the nearest point ``a + t (b - a)``."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1), t
