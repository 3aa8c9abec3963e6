"""sRGB transfer function and black-body colours against the standard formulas."""
import numpy as np
import pytest

from digitaltwin_jax.render.colorspace import (
    blackbody_rgb,
    linear_to_srgb8,
    linear_to_srgb,
    srgb_to_linear,
    srgb_to_linear_lut,
    to_uint8,
)


def _srgb_encode_reference(c):
    """IEC 61966-2-1, written out in float64."""
    c = float(c)
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _srgb_decode_reference(s):
    s = float(s)
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def test_linear_to_srgb_matches_standard_formula():
    x = np.concatenate([np.linspace(0, 0.01, 101), np.linspace(0, 1, 1001)])
    ref = np.array([_srgb_encode_reference(c) for c in x])
    np.testing.assert_allclose(linear_to_srgb(x), ref, atol=2e-6)
    # known values: linear 0.5 -> 0.7353569..., 0.18 (mid grey) -> 0.4613561...
    np.testing.assert_allclose(linear_to_srgb([0.5, 0.18, 1.0, 0.0]), [0.735356983, 0.461356129, 1.0, 0.0], atol=2e-6)


def test_srgb_to_linear_matches_standard_formula_and_inverts():
    s = np.linspace(0, 1, 1001)
    ref = np.array([_srgb_decode_reference(c) for c in s])
    np.testing.assert_allclose(srgb_to_linear(s), ref, atol=2e-6)
    x = np.linspace(0, 1, 257)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=3e-6)
    lut = srgb_to_linear_lut()
    assert lut.shape == (256,)
    np.testing.assert_allclose(lut, [_srgb_decode_reference(i / 255) for i in range(256)], atol=2e-6)


def test_clipping_and_uint8():
    np.testing.assert_allclose(linear_to_srgb([-1.0, 2.0]), [0.0, 1.0], atol=1e-6)
    np.testing.assert_array_equal(to_uint8([-0.1, 0.0, 0.5, 1.0, 1.3]), [0, 0, 128, 255, 255])


def test_blackbody_white_point_luminance_and_ordering():
    np.testing.assert_allclose(blackbody_rgb(6504.0), [1, 1, 1], atol=0.02)
    temps = np.array([2000.0, 3000.0, 4000.0, 5500.0, 8000.0, 12000.0])
    rgb = blackbody_rgb(temps)
    np.testing.assert_allclose(rgb @ [0.2126, 0.7152, 0.0722], 1.0, atol=1e-4)
    ratio = rgb[:, 0] / rgb[:, 2]
    assert np.all(np.diff(ratio) < 0)  # hotter is bluer
    assert rgb[1, 0] > rgb[1, 1] > rgb[1, 2]  # tungsten is orange
    with pytest.raises(ValueError):
        blackbody_rgb(-5.0)


def test_fast_uint8_encoding_is_within_one_code_of_the_formula():
    x = np.concatenate([np.linspace(-0.1, 1.1, 20001), np.linspace(0, 0.005, 2001)]).astype(np.float32)
    ref = np.array([np.rint(255 * _srgb_encode_reference(min(max(c, 0.0), 1.0))) for c in x])
    got = linear_to_srgb8(x)
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert (got.astype(int) == ref).mean() > 0.99
