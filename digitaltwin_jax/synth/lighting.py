"""Lighting for the synthetic renders: 30 named presets and their random perturbation (paper section
3.2 and supplementary 4.4 / Fig. 12: "30 different manually created lighting conditions").

A :class:`Lighting` is a few directional lights plus a hemispherical ambient term (sky colour from
above, ground colour from below) and a weak shadowless camera-side fill, all in **linear** RGB
radiometric units where a white Lambertian surface facing a light of intensity 1 reflects 1 before
exposure.  Directions are in the *camera*
frame (OpenCV: x right, y down, z forward) and point toward the light, so the lights stay fixed in the
photo while the head turns, like a studio or a room.

A light's direction is given by ``azimuth`` (degrees about the vertical axis, 0 = from the camera,
+90 = from image right, 180 = behind the subject) and ``elevation`` (degrees, + = above):
``l = (sin a cos e, -sin e, -cos a cos e)``.  ``softness`` is the angular radius (degrees) of the
source; it sets the width of the shadow penumbra (soft box ~ 15-25, window ~ 10-20, sun ~ 0.5).
Colours come from a colour temperature (:func:`digitaltwin_jax.render.colorspace.blackbody_rgb`),
pulled toward white by the camera's partial white balance (``white_balance`` in :func:`light_rgb`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.render.colorspace import blackbody_rgb

__all__ = [
    "Light",
    "Lighting",
    "PRESETS",
    "PRESET_NAMES",
    "Perturbation",
    "light_direction",
    "light_rgb",
    "preset",
    "perturb",
]


@dataclasses.dataclass(frozen=True)
class Light:
    """One directional light.

    Attributes:
      azimuth, elevation: degrees (see module docstring).
      intensity: linear irradiance scale.
      kelvin: colour temperature.
      softness: angular radius of the source in degrees (penumbra width).
      shadows: whether it casts shadows (the engine shadow-maps at most the two strongest).
    """

    azimuth: float
    elevation: float
    intensity: float
    kelvin: float = 5500.0
    softness: float = 5.0
    shadows: bool = True


@dataclasses.dataclass(frozen=True)
class Lighting:
    """A lighting condition.

    Attributes:
      name: preset name.
      lights: the directional lights.
      sky: ambient intensity arriving from above (linear).
      ground: ambient intensity arriving from below (linear).
      sky_kelvin, ground_kelvin: ambient colour temperatures.
      exposure_target: linear median luminance of the lit face after auto exposure (a low-key preset
        asks for a darker image).
      fill: camera-side fill (light from the photographer's side: reflectors, walls behind the
        camera, a phone screen), a soft shadowless directional term along the viewing axis, as a
        fraction of the summed light intensities.
    """

    name: str
    lights: tuple[Light, ...]
    sky: float = 0.25
    ground: float = 0.1
    sky_kelvin: float = 6500.0
    ground_kelvin: float = 5000.0
    exposure_target: float = 0.22
    fill: float = 0.15


def _L(az, el, i, k=5500.0, soft=5.0, shadows=True):
    return Light(float(az), float(el), float(i), float(k), float(soft), bool(shadows))


# 30 conditions modelled on common photo situations (portrait lighting patterns, rooms, outdoors).
PRESETS: tuple[Lighting, ...] = (
    Lighting("frontal_softbox", (_L(0, 15, 1.0, 5600, 22),), 0.30, 0.12),
    Lighting("beauty_dish", (_L(0, 35, 1.0, 5600, 10), _L(0, -25, 0.25, 5600, 25, False)), 0.2, 0.08),
    Lighting("butterfly_hard", (_L(0, 45, 1.2, 5600, 3),), 0.15, 0.08),
    Lighting("loop_left", (_L(-35, 30, 1.0, 5600, 12), _L(40, 5, 0.3, 5600, 25, False)), 0.2, 0.08),
    Lighting("loop_right", (_L(35, 30, 1.0, 5600, 12), _L(-40, 5, 0.3, 5600, 25, False)), 0.2, 0.08),
    Lighting("rembrandt_left", (_L(-50, 40, 1.1, 5200, 8), _L(45, 0, 0.15, 5200, 25, False)), 0.12, 0.05),
    Lighting("rembrandt_right", (_L(50, 40, 1.1, 5200, 8), _L(-45, 0, 0.15, 5200, 25, False)), 0.12, 0.05),
    Lighting("side_left", (_L(-65, 15, 1.2, 5600, 6),), 0.25, 0.10, exposure_target=0.16),
    Lighting("side_right", (_L(65, 15, 1.2, 5600, 6),), 0.25, 0.10, exposure_target=0.16),
    Lighting("window_left", (_L(-65, 12, 1.0, 6200, 18),), 0.22, 0.10, 7000, 4500),
    Lighting("window_right", (_L(65, 12, 1.0, 6200, 18),), 0.22, 0.10, 7000, 4500),
    Lighting("window_front_overcast", (_L(20, 10, 0.8, 6800, 28),), 0.45, 0.18, 7000, 5000),
    Lighting("office_overhead_fluorescent", (_L(0, 70, 1.0, 4200, 20), _L(0, 20, 0.25, 4200, 30, False)),
             0.30, 0.15, 4300, 4000),
    Lighting("downlight_warm", (_L(10, 62, 1.2, 2900, 4),), 0.10, 0.06, 3000, 2800, 0.18),
    Lighting("sun_high_noon", (_L(15, 62, 1.6, 5600, 0.5),), 0.45, 0.20, 9000, 5000),
    Lighting("sun_side_left", (_L(-60, 30, 1.5, 5400, 0.5),), 0.40, 0.18, 9000, 5000),
    Lighting("sun_side_right", (_L(60, 30, 1.5, 5400, 0.5),), 0.40, 0.18, 9000, 5000),
    Lighting("overcast_sky", (_L(0, 60, 0.35, 6800, 35, False),), 0.75, 0.25, 6800, 5500),
    Lighting("open_shade", (_L(0, 5, 0.2, 7500, 35, False),), 0.6, 0.25, 10000, 5500),
    Lighting("golden_hour_left", (_L(-55, 10, 1.3, 3000, 0.5),), 0.35, 0.12, 10000, 4000),
    Lighting("golden_hour_right", (_L(55, 10, 1.3, 3000, 0.5),), 0.35, 0.12, 10000, 4000),
    Lighting("backlit_sun", (_L(165, 30, 2.0, 5000, 0.5), _L(0, -10, 0.25, 5500, 30, False)), 0.40, 0.15, 8500, 5000),
    Lighting("rim_kickers", (_L(-130, 15, 1.2, 5600, 6), _L(130, 15, 1.2, 5600, 6),
                             _L(0, 20, 0.35, 5600, 25, False)), 0.1, 0.04, exposure_target=0.17),
    Lighting("low_key_left", (_L(-50, 25, 1.2, 5000, 5),), 0.12, 0.05, exposure_target=0.13),
    Lighting("low_key_right", (_L(50, 25, 1.2, 5000, 5),), 0.12, 0.05, exposure_target=0.13),
    Lighting("high_key", (_L(0, 20, 0.7, 5600, 30), _L(-50, 10, 0.4, 5600, 25, False),
                          _L(50, 10, 0.4, 5600, 25, False)), 0.5, 0.3, exposure_target=0.32),
    Lighting("clamshell", (_L(0, 40, 1.0, 5600, 15), _L(0, -35, 0.4, 5600, 20, False)), 0.15, 0.1),
    Lighting("screen_glow_night", (_L(0, -3, 0.8, 8000, 12),), 0.02, 0.01, 3000, 3000, 0.13),
    Lighting("candle_warm_low", (_L(20, -12, 1.0, 2300, 8),), 0.15, 0.08, 3500, 3000, 0.15),
    Lighting("mixed_tungsten_daylight", (_L(-45, 25, 0.9, 3200, 8), _L(70, 10, 0.6, 6800, 18)), 0.15, 0.06, 5500, 4000),
)
PRESET_NAMES: tuple[str, ...] = tuple(p.name for p in PRESETS)
assert len(PRESETS) == 30 and len(set(PRESET_NAMES)) == 30


def preset(name_or_index) -> Lighting:
    """A preset by name or index (ValueError listing the names if unknown)."""
    if isinstance(name_or_index, (int, np.integer)):
        if not 0 <= int(name_or_index) < len(PRESETS):
            raise ValueError(f"preset index must be in [0, {len(PRESETS)}), got {name_or_index}")
        return PRESETS[int(name_or_index)]
    try:
        return PRESETS[PRESET_NAMES.index(name_or_index)]
    except ValueError:
        raise ValueError(f"unknown lighting preset {name_or_index!r}; known: {', '.join(PRESET_NAMES)}") from None


def light_direction(azimuth, elevation) -> np.ndarray:
    """``(..., 3) float64`` unit direction toward the light in the camera frame (module docstring)."""
    a = np.deg2rad(np.asarray(azimuth, dtype=np.float64))
    e = np.deg2rad(np.asarray(elevation, dtype=np.float64))
    return np.stack([np.sin(a) * np.cos(e), -np.sin(e), -np.cos(a) * np.cos(e)], axis=-1)


def light_rgb(kelvin, intensity=1.0, white_balance: float = 0.6) -> np.ndarray:
    """``(3,) float32`` linear colour of a light: ``intensity * blackbody(kelvin)^(1 - white_balance)``.

    ``white_balance`` in [0, 1] is how much of the tint the camera removes (0: none, 1: all); cameras
    leave part of the warmth of tungsten and the coolness of shade, which 0.6 imitates.
    """
    rgb = blackbody_rgb(kelvin).astype(np.float64)
    rgb = np.power(np.maximum(rgb, 1e-6), 1.0 - float(white_balance))
    rgb /= rgb @ np.array([0.2126, 0.7152, 0.0722])
    return (float(intensity) * rgb).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Random variation applied to a preset (each image draws its own).

    Attributes:
      direction_deg: each light's azimuth/elevation moves by ``U(-d, d)`` degrees.
      intensity_log_sigma: each light's and the ambient's intensity is multiplied by
        ``exp(N(0, sigma))``.
      kelvin_sigma: colour temperature offset ``N(0, sigma)`` (clipped to [1800, 12000] K).
      mirror_probability: probability of mirroring the whole setup left-right.
      exposure_log_sigma: multiplicative jitter of the exposure target.
    """

    direction_deg: float = 12.0
    intensity_log_sigma: float = 0.2
    kelvin_sigma: float = 500.0
    mirror_probability: float = 0.5
    exposure_log_sigma: float = 0.2


def perturb(lighting: Lighting, rng: np.random.Generator, config: Perturbation = Perturbation()) -> Lighting:
    """A randomly perturbed copy of ``lighting`` (same name); ``rng`` is consumed in a fixed order."""
    mirror = rng.random() < config.mirror_probability
    lights = []
    for lt in lighting.lights:
        daz, delev = rng.uniform(-config.direction_deg, config.direction_deg, size=2)
        gain = float(np.exp(rng.normal(0.0, config.intensity_log_sigma)))
        dk = float(rng.normal(0.0, config.kelvin_sigma))
        az = (lt.azimuth + daz) * (-1.0 if mirror else 1.0)
        lights.append(dataclasses.replace(
            lt, azimuth=float(az), elevation=float(np.clip(lt.elevation + delev, -80, 85)),
            intensity=lt.intensity * gain, kelvin=float(np.clip(lt.kelvin + dk, 1800, 12000))))
    amb = np.exp(rng.normal(0.0, config.intensity_log_sigma, size=2))
    dk = rng.normal(0.0, config.kelvin_sigma, size=2)
    ex = float(np.exp(rng.normal(0.0, config.exposure_log_sigma)))
    return dataclasses.replace(
        lighting,
        lights=tuple(lights),
        sky=float(lighting.sky * amb[0]),
        ground=float(lighting.ground * amb[1]),
        sky_kelvin=float(np.clip(lighting.sky_kelvin + dk[0], 1800, 12000)),
        ground_kelvin=float(np.clip(lighting.ground_kelvin + dk[1], 1800, 12000)),
        exposure_target=float(np.clip(lighting.exposure_target * ex, 0.06, 0.45)),
        fill=float(lighting.fill * np.exp(rng.normal(0.0, config.intensity_log_sigma))),
    )
