"""Texture fidelity metrics against closed forms and an independent SSIM (scipy.ndimage filters)."""
import numpy as np
import pytest
from scipy import ndimage

from digitaltwin_jax.render import grid
from digitaltwin_jax.texture.metrics import (
    albedo_scores,
    face_compare_mask,
    psnr,
    rerender_scores,
    seam_scores,
    ssim,
)


def _rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------- PSNR


def test_psnr_constant_offset_and_noise_level():
    a = _rng().random((64, 80, 3))
    assert psnr(a, a + 0.01) == pytest.approx(40.0, abs=1e-9)  # -20 log10(0.01)
    assert psnr(a, a) == float("inf")
    sigma = 0.02
    b = a + sigma * np.random.default_rng(1).standard_normal((1000, 1000, 3))[:64, :80]
    big = np.random.default_rng(2).random((600, 600, 3))
    noisy = big + sigma * np.random.default_rng(3).standard_normal(big.shape)
    assert psnr(big, noisy) == pytest.approx(-20 * np.log10(sigma), abs=0.02)  # 1.08M samples
    assert psnr(a, b) < psnr(a, a + 0.001)


def test_psnr_mask_and_uint8_scaling():
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[:, 5:] = 51  # 0.2 of full scale
    m = np.zeros((10, 10), bool)
    m[:, :5] = True
    assert psnr(a, b, m) == float("inf")
    m[:, 5] = True  # 10 of 60 pixels off by 0.2 -> MSE 0.04 / 6
    assert psnr(a, b, m) == pytest.approx(10 * np.log10(6 / 0.04), abs=1e-6)
    with pytest.raises(ValueError):
        psnr(a, b, np.zeros((10, 10), bool))
    with pytest.raises(ValueError):
        psnr(a, b[:5])
    with pytest.raises(ValueError):
        psnr(a, b, m[:5])


# ---------------------------------------------------------------- SSIM


def _ssim_scipy(x, y, sigma=1.5, c1=1e-4, c2=9e-4):
    g = lambda z: ndimage.gaussian_filter(z, sigma, truncate=5 / sigma, mode="nearest")  # noqa: E731
    mx, my = g(x), g(y)
    sxx, syy, sxy = g(x * x) - mx**2, g(y * y) - my**2, g(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def test_ssim_identical_is_one_and_constant_images_closed_form():
    a = _rng().random((40, 50, 3))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    x, y = np.full((20, 20), 0.3), np.full((20, 20), 0.6)
    c1 = 1e-4
    assert ssim(x, y) == pytest.approx((2 * 0.3 * 0.6 + c1) / (0.09 + 0.36 + c1), abs=1e-9)


def test_ssim_matches_an_independent_scipy_implementation():
    rng = _rng()
    a = ndimage.gaussian_filter(rng.random((60, 70, 3)), (1.0, 1.0, 0))
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    mask = np.zeros((60, 70), bool)
    mask[10:50, 5:40] = True
    ref = np.mean([_ssim_scipy(a[..., c], b[..., c])[mask] for c in range(3)])
    assert ssim(a, b, mask) == pytest.approx(ref, abs=1e-6)
    assert 0.2 < ref < 0.95  # a real, non-trivial comparison
    assert ssim(a, b) < ssim(a, (a + b) / 2)


# ---------------------------------------------------------------- face mask


def _poly_area(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def _landmarks(cx=100.0, cy=110.0, r=70.0):
    lm = np.zeros((68, 2))
    outer = [i for i in range(68) if not 36 <= i <= 47 and not 60 <= i <= 67]
    ang = np.linspace(0, 2 * np.pi, len(outer), endpoint=False)
    lm[outer] = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1)
    hexa = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([12 * np.cos(hexa), 7 * np.sin(hexa)], 1)
    lm[36:42] = eye + (cx - 25, cy - 20)
    lm[42:48] = eye + (cx + 25, cy - 20)
    octa = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.stack([cx + 20 * np.cos(octa), cy + 30 + 6 * np.sin(octa)], 1)
    return lm


def test_face_compare_mask_is_hull_minus_eyes_and_inner_mouth():
    lm = _landmarks()
    m = face_compare_mask(lm, (220, 200))
    outer = np.array([p for i, p in enumerate(lm) if not 36 <= i <= 47 and not 60 <= i <= 67])
    area = _poly_area(outer) - _poly_area(lm[36:42]) - _poly_area(lm[42:48]) - _poly_area(lm[60:68])
    perimeter = 2 * np.pi * 70 + 2 * 60 + 2 * 90  # hull + holes (upper bounds)
    assert abs(m.sum() - area) < 0.5 * perimeter
    # corner-origin landmarks: pixel (i, j) has its centre at (j + 0.5, i + 0.5)
    assert m[110, 100] and m[110, 150]  # centre, cheek
    assert not m[90, 75] and not m[90, 125]  # eye centres (100 - 25, 110 - 20) -> row 89.5
    assert not m[140, 100]  # inner mouth centre
    assert not m[5, 5] and not m[110, 175]  # outside the hull


def test_face_compare_mask_rejects_bad_landmarks():
    with pytest.raises(ValueError):
        face_compare_mask(np.zeros((67, 2)), (10, 10))
    lm = _landmarks()
    lm[3] = np.nan
    with pytest.raises(ValueError):
        face_compare_mask(lm, (220, 200))


# ---------------------------------------------------------------- re-render


def _pixel_aligned_quad(h, w, f=500.0, z=400.0):
    """A quad filling the image exactly, frontal: texel (i, j) of an (h, w) map lands on pixel (i, j)."""
    v, faces, uvs = grid(4, 4, width=w * z / f, height=h * z / f)
    vc = v.astype(np.float64) * [1.0, -1.0, -1.0] + [0.0, 0.0, z]  # head y up -> camera y down
    faces = faces[:, ::-1]  # keep the winding seen from the camera
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    return vc, faces, uvs, K


def test_rerender_of_the_photo_as_texture_reproduces_it_and_offsets_give_closed_form_psnr():
    h, w = 220, 200
    rng = _rng()
    photo = ndimage.gaussian_filter(rng.random((h, w, 3)), (2, 2, 0)).astype(np.float32)
    vc, faces, uvs, K = _pixel_aligned_quad(h, w)
    lm = _landmarks()
    same = rerender_scores(photo, vc, faces, K, uvs, faces, photo, lm)
    assert same.psnr > 60 and same.ssim == pytest.approx(1.0, abs=1e-5)
    assert same.pixels == face_compare_mask(lm, (h, w)).sum()
    off = rerender_scores(photo, vc, faces, K, uvs, faces, photo + np.float32(0.05), lm)
    assert off.psnr == pytest.approx(-20 * np.log10(0.05), abs=1e-3)
    np.testing.assert_allclose(off.bias, [12.75] * 3, atol=1e-3)
    with pytest.raises(ValueError):
        rerender_scores(photo[..., 0], vc, faces, K, uvs, faces, photo, lm)


# ---------------------------------------------------------------- albedo recovery


def _srgb_to_linear(x):  # IEC 61966-2-1, written out here as the independent reference
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def test_albedo_scores_exact_offset_and_gain():
    rng = _rng()
    truth = 0.2 + 0.6 * rng.random((32, 32, 3))
    region = np.zeros((32, 32), bool)
    region[4:28, 2:20] = True
    s = albedo_scores(truth, truth, region)
    assert s.psnr == float("inf") and s.mae == 0 and s.texels == region.sum()
    s = albedo_scores(truth + 0.02, truth, region)
    assert s.psnr == pytest.approx(-20 * np.log10(0.02), abs=1e-4) and s.mae == pytest.approx(5.1, abs=1e-4)
    # an exposure / light-colour error is a per-channel gain in linear light: the gained scores see none
    g = np.array([0.6, 0.5, 0.4])
    est = _linear_to_srgb(_srgb_to_linear(truth) * g)
    s = albedo_scores(est, truth, region)
    np.testing.assert_allclose(s.gain, 1 / g, rtol=1e-4)
    assert s.psnr < 20 and s.psnr_gain > 60 and s.mae_gain < 0.01
    # truth at another resolution is resized (bilinear): a linear ramp is reproduced exactly inside
    ramp = lambda n: np.broadcast_to(((np.arange(n) + 0.5) / n)[None, :, None] * [0.5, 0.3, 0.2] + 0.2,  # noqa: E731
                                     (n, n, 3))
    inner = np.zeros((64, 64), bool)
    inner[2:-2, 2:-2] = True
    s = albedo_scores(ramp(64), ramp(32), inner)
    assert s.psnr > 100
    with pytest.raises(ValueError):
        albedo_scores(truth[..., 0], truth, region)


# ---------------------------------------------------------------- seams


def _half_planes(h=60, w=80, x0=40):
    region = np.zeros((h, w), bool)
    region[:, :x0] = True
    return region


def test_seam_scores_step_closed_form():
    region = _half_planes()
    tex = np.full((60, 80, 3), 0.5)
    tex[:, 40:, 1] += 0.1  # a step of 25.5 levels in one channel at the border
    s = seam_scores(tex, region, radius=4)
    assert s.colour_jump == pytest.approx(25.5, abs=1e-6)
    assert s.gradient_jump == pytest.approx(25.5, abs=1e-6)
    assert s.colour_inside == pytest.approx(0, abs=1e-9) and s.colour_outside == pytest.approx(0, abs=1e-9)
    assert s.gradient_inside == pytest.approx(0, abs=1e-9) and s.border_texels == 60


def test_seam_scores_linear_ramp_is_invisible():
    region = _half_planes()
    g = 0.004  # per texel, across the border
    x = np.arange(80)[None, :].repeat(60, 0)
    tex = np.zeros((60, 80, 3))
    tex[..., 0] = 0.2 + g * x
    r = 3
    s = seam_scores(tex, region, radius=r)
    for v in (s.colour_jump, s.colour_inside, s.colour_outside):
        assert v == pytest.approx(255 * g * (r + 0.5), rel=1e-6)
    for v in (s.gradient_jump, s.gradient_inside, s.gradient_outside):
        assert v == pytest.approx(255 * g, rel=1e-6)
    assert s.colour_ratio == pytest.approx(1.0, rel=1e-6) and s.gradient_ratio == pytest.approx(1.0, rel=1e-6)


def test_seam_scores_domain_and_errors():
    region = _half_planes()
    dom = np.ones_like(region)
    dom[:, 70:] = False  # texels outside the charts hold garbage that must not count
    tex = np.full((60, 80, 3), 0.5)
    tex[:, 70:] = 0.0
    s = seam_scores(tex, region, dom, radius=2)
    assert s.colour_jump == pytest.approx(0, abs=1e-9) and s.gradient_jump == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError):
        seam_scores(tex, np.ones_like(region))
    with pytest.raises(ValueError):
        seam_scores(tex, region, radius=0)
    with pytest.raises(ValueError):
        seam_scores(tex, region[:10])
