"""Colour transfer (against the CIE Lab formulas written out here) and band blending (against the
closed-form harmonic solution in a strip)."""
import numpy as np
import pytest

from digitaltwin_jax.texture.blend import band_blend
from digitaltwin_jax.texture.color import transfer_color


def lab_ref(rgb):
    """sRGB (IEC 61966-2-1) -> CIE 1976 L*a*b*, D65 white, written from the definitions."""
    rgb = np.asarray(rgb, np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


LAB_TOL = 0.6  # OpenCV's float Lab uses a tabulated sRGB curve: up to ~0.3 units from the formulas


def test_transfer_color_of_a_flat_map_gives_the_reference_median():
    img = np.full((20, 30, 3), (0.8, 0.6, 0.5), np.float32)
    rng = np.random.default_rng(0)
    ref = np.clip(np.array([0.55, 0.40, 0.33]) + 0.05 * rng.standard_normal((20, 30, 3)), 0, 1).astype(np.float32)
    region = np.ones((20, 30), bool)
    out = transfer_color(img, ref, region)
    target = np.median(lab_ref(ref).reshape(-1, 3), axis=0)
    np.testing.assert_allclose(lab_ref(out[0, 0]), target, atol=LAB_TOL)
    assert np.ptp(out.reshape(-1, 3), axis=0).max() < 1e-6  # still flat


def test_transfer_color_shift_keeps_lab_differences_and_scale_matches_spread():
    rng = np.random.default_rng(1)
    img = np.clip(np.array([0.7, 0.55, 0.45]) + 0.04 * rng.standard_normal((40, 40, 3)), 0, 1).astype(np.float32)
    ref = np.clip(np.array([0.5, 0.45, 0.35]) + 0.08 * rng.standard_normal((40, 40, 3)), 0, 1).astype(np.float32)
    region = np.zeros((40, 40), bool)
    region[5:35, 5:35] = True
    out = transfer_color(img, ref, region)
    d_in, d_out = lab_ref(img), lab_ref(out)
    shift = d_out - d_in
    const = np.broadcast_to(np.median(shift.reshape(-1, 3), 0), shift.shape)
    np.testing.assert_allclose(shift, const, atol=2 * LAB_TOL)
    np.testing.assert_allclose(np.median(d_out[region], 0), np.median(lab_ref(ref)[region], 0), atol=LAB_TOL)
    # with the spread matched too, the robust spread of the result is the reference's
    out2 = transfer_color(img, ref, region, scale_limits=(0.1, 10.0))

    def mad(x):
        return 1.4826 * np.median(np.abs(x - np.median(x, 0)), 0)

    np.testing.assert_allclose(mad(lab_ref(out2)[region]), mad(lab_ref(ref)[region]), rtol=0.1, atol=0.3)
    # `apply` leaves other texels alone
    apply = np.zeros((40, 40), bool)
    apply[:, :20] = True
    out3 = transfer_color(img, ref, region, apply=apply)
    np.testing.assert_array_equal(out3[:, 20:], img[:, 20:])
    np.testing.assert_allclose(out3[:, :20], out[:, :20], atol=1e-6)


def test_transfer_color_validation():
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError):
        transfer_color(img[..., 0], img, np.ones((8, 8), bool))
    with pytest.raises(ValueError):
        transfer_color(img, img, np.ones((4, 8), bool))
    with pytest.raises(ValueError):
        transfer_color(img, img, np.ones((8, 8), bool), scale_limits=(2.0, 1.0))
    # too few texels: unchanged
    np.testing.assert_array_equal(transfer_color(img + 0.5, img, np.ones((8, 8), bool)), img + 0.5)


def _strip(w=64, x_core=20):
    h = 24
    core = np.zeros((h, w), bool)
    core[:, :x_core] = True
    return core, np.ones((h, w), bool)


@pytest.mark.parametrize("coarse", [1, 4])
def test_band_blend_is_the_linear_ramp_in_a_strip(coarse):
    core, dom = _strip()
    p, b = np.array([0.8, 0.5, 0.4]), np.array([0.3, 0.4, 0.6])
    photo = np.broadcast_to(p, core.shape + (3,)).astype(np.float32)
    bank = np.broadcast_to(b, core.shape + (3,)).astype(np.float32)
    width = 16
    out, info = band_blend(photo, bank, core, dom, width=width, sigma=6, feather=4, coarse=coarse)
    # the photo is untouched (constant mismatch: the feather mixes photo with itself)
    np.testing.assert_allclose(out[core], photo[core], atol=1e-6)
    # harmonic in the band with zero flux at the strip's sides: linear from p (last core column) to
    # b (first column beyond the band)
    band = info["band"]
    assert band[:, 20:20 + width].all() and not band[:, 20 + width:].any()
    x = np.arange(64)
    t = np.clip((x - 19) / (width + 1), 0, 1)
    expect = p + t[:, None] * (b - p)
    # exact on the texel grid; on 4x4 cells the ramp's ends move by at most half a cell each
    tol = 1e-4 if coarse == 1 else float(np.abs(b - p).max()) * coarse / (width + 1)
    np.testing.assert_allclose(out[5], expect, atol=tol)
    assert (np.diff(out[5, 19:38, 0]) <= 1e-6).all()  # monotone from p down to b
    np.testing.assert_allclose(out[:, 20 + width + 1:], bank[:, 20 + width + 1:], atol=1e-6)


def test_band_blend_smooths_the_border_mismatch_and_feathers_the_photo():
    core, dom = _strip(64, 20)
    photo = np.full(core.shape + (3,), 0.6, np.float32)
    photo[::2, 19] = 0.1  # dark strands on every other row of the last photo column
    bank = np.full(core.shape + (3,), 0.6, np.float32)
    out, _ = band_blend(photo, bank, core, dom, width=16, sigma=8, feather=4)
    # the strands reach the band only as their smoothed mean, and fade out inside the feather
    assert np.ptp(out[:, 21]) < 0.05
    assert abs(out[3, 19, 0] - 0.1) > 0.2  # feathered toward the smoothed border colour
    np.testing.assert_allclose(out[:, :14], photo[:, :14])  # beyond the feather: the photo


def test_band_blend_validation():
    core, dom = _strip()
    a = np.zeros(core.shape + (3,), np.float32)
    with pytest.raises(ValueError):
        band_blend(a, a[..., :2], core, dom, width=4, sigma=1, feather=1)
    with pytest.raises(ValueError):
        band_blend(a, a, core[:4], dom, width=4, sigma=1, feather=1)
    with pytest.raises(ValueError):
        band_blend(a, a, core, dom, width=-1, sigma=1, feather=1)
    with pytest.raises(ValueError):
        band_blend(a, a, core, dom, width=4, sigma=1, feather=1, coarse=0)
