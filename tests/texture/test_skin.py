"""The shared skin model (digitaltwin_jax/texture/skin.py): palettes against the documented formulas
computed here by hand, one undertone convention for both palettes, the parameter prior's odds."""
import numpy as np
import pytest

from digitaltwin_jax.texture.skin import (
    SkinParams,
    sample_skin_params,
    segment_distance,
    skin_base_color,
    skin_base_linear,
    smoothstep,
)

# Monk Skin Tone scale swatches 1, 5, 6, 10 as published (hex), and the renderer's anchors (sRGB 8-bit)
MONK = {1: (0xF6, 0xED, 0xE4), 5: (0xD7, 0xBD, 0x96), 6: (0xA0, 0x7E, 0x56), 10: (0x29, 0x24, 0x20)}
ANCHORS = [(232, 190, 170), (200, 152, 128), (168, 118, 88), (118, 80, 60), (72, 48, 37)]


def _srgb_to_linear(c):
    """IEC 61966-2-1."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _monk_by_hand(swatch_rgb, u):
    c = np.asarray(swatch_rgb, np.float64) / 255.0
    s = np.array([0.02, 0.01, -0.03]) if u >= 0 else np.array([0.03, -0.02, 0.0])
    return np.clip(c * [1.0, 0.93, 0.88] + abs(u) * s * (0.5 + c.mean()), 0.0, 1.0)


@pytest.mark.parametrize("swatch,u", [(1, 0.0), (5, 0.0), (6, 0.7), (10, -1.0), (5, -0.4)])
def test_bank_palette_at_the_swatches(swatch, u):
    got = skin_base_color((swatch - 1) / 9.0, u)
    np.testing.assert_allclose(got, _monk_by_hand(MONK[swatch], u), atol=2e-6)


def test_bank_palette_interpolates_between_swatches_in_srgb():
    got = skin_base_color(4.5 / 9.0)
    want = 0.5 * (_monk_by_hand(MONK[5], 0.0) + _monk_by_hand(MONK[6], 0.0))
    np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("k", range(5))
@pytest.mark.parametrize("u", [0.0, 1.0, -0.5])
def test_render_palette_at_the_anchors(k, u):
    lin = _srgb_to_linear(np.asarray(ANCHORS[k]) / 255.0)
    tilt = np.array([-0.02, 0.02, -0.06]) if u > 0 else np.array([0.04, -0.03, -0.01])
    np.testing.assert_allclose(skin_base_linear(k / 4.0, u), lin * (1 + abs(u) * tilt), rtol=1e-6, atol=1e-7)


def test_render_palette_interpolates_in_linear_light():
    lin = _srgb_to_linear(np.asarray(ANCHORS[1:3]) / 255.0)
    np.testing.assert_allclose(skin_base_linear(0.25 + 0.25 * 0.3), 0.7 * lin[0] + 0.3 * lin[1], rtol=1e-6)


def test_one_undertone_convention_for_both_palettes():
    """+ = warm (yellow/olive): green minus blue grows with the undertone in both palettes."""
    us = np.linspace(-1.0, 1.0, 21)
    for tone in (0.05, 0.3, 0.5, 0.8, 0.97):
        srgb = np.array([skin_base_color(tone, u) for u in us])
        lin = np.array([skin_base_linear(tone, u) for u in us])
        assert np.all(np.diff(srgb[:, 1] - srgb[:, 2]) > 0), tone
        assert np.all(np.diff(lin[:, 1] - lin[:, 2]) > 0), tone


def test_darker_with_tone():
    lum = np.array([0.2126, 0.7152, 0.0722])
    tones = np.linspace(0.0, 1.0, 41)
    assert np.all(np.diff([skin_base_linear(t) @ lum for t in tones]) < 0)
    # the published Monk swatch 3 is slightly brighter than swatch 2; from swatch 3 on it darkens
    monk = np.array([skin_base_color(t) @ lum for t in tones[tones >= 2 / 9]])
    assert np.all(np.diff(monk) < 0)
    assert skin_base_color(0.0) @ lum > 0.85 and skin_base_color(1.0) @ lum < 0.15


def test_prior_ranges_and_hair_odds():
    """Draws stay in the documented ranges; P(black or dark-brown hair) matches the closed form."""
    rng = np.random.default_rng(7)

    def dark_hair_odds(tone):
        light = max(0.0, 0.45 - tone) / 0.45
        p = np.array([0.35 + 0.4 * (1 - light), 0.3, 0.15 + 0.1 * light, 0.1 * light, 0.12 * light,
                      0.04 * light, 0.06])
        return (p[0] + p[1]) / p.sum()

    for tone in (0.1, 0.9):
        draws = [sample_skin_params(rng, tone=tone) for _ in range(2000)]
        assert all(-1 <= d.undertone <= 1 and 0.1 <= d.redness <= 0.8 and 0.5 <= d.brow_density <= 1
                   and -6 <= d.hairline <= 14 and 0 <= d.stubble <= 1 and d.tone == tone for d in draws)
        # black (R <= 27.5) and dark brown (R in [36.9, 59.9]) are the only colours with R < 62
        frac = np.mean([d.hair_color[0] < 62.0 for d in draws])
        assert abs(frac - dark_hair_odds(tone)) < 0.04, (tone, frac, dark_hair_odds(tone))
        assert 0.7 < np.mean([d.hair for d in draws]) < 0.9  # hair_probability 0.8
        assert 0.2 < np.mean([d.stubble > 0 for d in draws]) < 0.3  # a quarter
        # the bank's columns keep their defaults
        assert {(d.lip_tint, d.hair_darkness, d.variation) for d in draws} == {(0.6, 0.6, 0.06)}
    u = [sample_skin_params(rng).undertone for _ in range(2000)]
    assert min(u) < -0.95 and max(u) > 0.95 and abs(np.mean(u)) < 0.05


def test_bank_columns_round_trip():
    p = SkinParams(tone=0.3, undertone=-0.2, redness=0.1, lip_tint=0.5, hair_darkness=0.9, variation=0.05, seed=42)
    np.testing.assert_array_equal(p.as_array(), [0.3, -0.2, 0.1, 0.5, 0.9, 0.05, 42])
    assert SkinParams.from_array(p.as_array()) == p
    with pytest.raises(ValueError, match="7 bank columns"):
        SkinParams.from_array(np.zeros(9))


def test_smoothstep_and_segment_distance():
    np.testing.assert_allclose(smoothstep(0.0, 2.0, np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])),
                               [0.0, 0.0, 0.15625, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(smoothstep(2.0, 0.0, np.array([0.5])), [1 - 0.15625])  # falling edge
    p = np.array([[0.0, 1.0], [3.0, 4.0], [-2.0, 0.0], [1.0, 0.0]])
    d, t = segment_distance(p, np.array([0.0, 0.0]), np.array([2.0, 0.0]))
    np.testing.assert_allclose(d, [1.0, np.hypot(1.0, 4.0), 2.0, 0.0])
    np.testing.assert_allclose(t, [0.0, 1.0, 0.0, 0.5])
