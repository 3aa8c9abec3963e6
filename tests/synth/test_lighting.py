"""Lighting presets and their perturbation."""
import dataclasses

import numpy as np
import pytest

from digitaltwin_jax.synth.lighting import (
    PRESET_NAMES,
    PRESETS,
    Perturbation,
    light_direction,
    light_rgb,
    perturb,
    preset,
)


def test_thirty_distinct_named_presets():
    assert len(PRESETS) == 30 and len(set(PRESET_NAMES)) == 30
    for p in PRESETS:
        assert p.lights and all(li.intensity > 0 for li in p.lights)
        assert p.sky >= 0 and p.ground >= 0 and 0 < p.exposure_target < 0.5
    assert preset("window_left").name == "window_left"
    assert preset(3) is PRESETS[3]
    with pytest.raises(ValueError, match="unknown lighting preset"):
        preset("disco")


def test_light_direction_conventions():
    np.testing.assert_allclose(light_direction(0, 0), [0, 0, -1], atol=1e-12)  # from the camera
    np.testing.assert_allclose(light_direction(90, 0), [1, 0, 0], atol=1e-12)  # image right
    np.testing.assert_allclose(light_direction(180, 0), [0, 0, 1], atol=1e-12)  # behind the subject
    np.testing.assert_allclose(light_direction(0, 90), [0, -1, 0], atol=1e-12)  # above (y down)
    d = light_direction(np.array([13.0, -70.0]), np.array([5.0, 40.0]))
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)


def test_light_rgb_luminance_and_white_balance():
    for k in (2500.0, 5000.0, 9000.0):
        np.testing.assert_allclose(light_rgb(k, 2.0) @ [0.2126, 0.7152, 0.0722], 2.0, rtol=1e-5)
    full = light_rgb(2500.0, 1.0, white_balance=0.0)
    half = light_rgb(2500.0, 1.0, white_balance=0.6)
    none = light_rgb(2500.0, 1.0, white_balance=1.0)
    assert full[0] / full[2] > half[0] / half[2] > 1.0
    np.testing.assert_allclose(none, 1.0, atol=1e-5)


def test_perturbation_stays_within_bounds_and_is_deterministic():
    cfg = Perturbation(direction_deg=10.0, mirror_probability=0.0)
    base = preset("rembrandt_left")
    for s in range(50):
        p = perturb(base, np.random.default_rng(s), cfg)
        for a, b in zip(p.lights, base.lights):
            assert abs(a.azimuth - b.azimuth) <= 10.0 + 1e-9
            assert abs(a.elevation - b.elevation) <= 10.0 + 1e-9
            assert 1800 <= a.kelvin <= 12000
        assert 0.06 <= p.exposure_target <= 0.45
    a = perturb(base, np.random.default_rng(1))
    b = perturb(base, np.random.default_rng(1))
    assert a == b


def test_mirroring_flips_azimuths():
    base = preset("loop_left")
    m = perturb(base, np.random.default_rng(0), Perturbation(direction_deg=0.0, mirror_probability=1.0,
                                                             intensity_log_sigma=0.0, kelvin_sigma=0.0))
    assert [li.azimuth for li in m.lights] == [-li.azimuth for li in base.lights]
    assert dataclasses.replace(m, lights=base.lights).name == base.name
