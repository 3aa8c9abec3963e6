"""De-lighting: spherical-harmonic shading fitted from normals and colours, against closed forms
(known lighting on known normals) and a rendered sphere with a known texture."""
import numpy as np
import pytest

from digitaltwin_jax.texture.delight import DelightConfig, delight_colors, estimate_shading, fit_sh_shading, sh_basis


def _hemisphere(n=4000, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[:, 2] = -np.abs(v[:, 2])  # facing a camera looking along +z
    return v


def _srgb(x):
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0), 1 / 2.4) - 0.055)


def _lin(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_sh_basis_is_orthonormal_on_the_sphere():
    n = np.random.default_rng(1).standard_normal((200_000, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    Y = sh_basis(n, 2)
    gram = 4 * np.pi * (Y.T @ Y) / len(n)  # Monte Carlo integral over the sphere
    np.testing.assert_allclose(gram, np.eye(9), atol=0.02)
    with pytest.raises(ValueError):
        sh_basis(n[:, :2])


def test_fit_recovers_known_lighting_and_ignores_outliers():
    n = _hemisphere()
    L = np.array([[0.8, 0.75, 0.7], [0.1, 0.1, 0.1], [-0.3, -0.28, -0.25], [0.15, 0.12, 0.1],
                  [0.02, 0.02, 0.02], [0.05, 0.04, 0.04], [-0.04, -0.04, -0.03], [0.03, 0.02, 0.02],
                  [0.01, 0.01, 0.01]])
    colours = sh_basis(n) @ L
    C, used = fit_sh_shading(colours, n)
    np.testing.assert_allclose(C, L, atol=1e-6)
    bad = colours.copy()
    bad[:200] *= 0.2  # 5% dark outliers (brows, hair strands)
    C2, used2 = fit_sh_shading(bad, n)
    np.testing.assert_allclose(C2, L, atol=0.01)
    assert not used2[:200].any() and used2[200:].mean() > 0.9


def test_delight_of_a_uniform_albedo_under_white_sh_light_is_flat():
    n = _hemisphere()
    white = np.array([0.9, 0.0, -0.35, 0.2, 0.0, 0.05, -0.05, 0.03, 0.02])[:, None] * np.ones(3)
    albedo = np.array([0.55, 0.38, 0.30])
    lin = albedo * (sh_basis(n) @ white)
    assert lin.min() > 0.02
    delit, rel, model = delight_colors(_srgb(lin), n, np.ones(len(n)), DelightConfig(min_shading=0.05))
    flat = _lin(delit.astype(np.float64))
    # the relative shading is removed: one colour left, the median level of the photo
    assert np.ptp(flat / flat.mean(0), axis=0).max() < 2e-3
    np.testing.assert_allclose(flat.mean(0) / flat.mean(0).sum(), albedo / albedo.sum(), atol=1e-3)
    np.testing.assert_allclose(_lin(delit) * rel, lin, rtol=2e-3, atol=1e-4)  # delit * shading = photo
    # the clamp limits the amplification of dark texels
    _, rel2, _ = delight_colors(_srgb(lin), n, np.ones(len(n)), DelightConfig(min_shading=0.8))
    assert rel2.min() >= 0.8 - 1e-6


def test_delight_validation():
    n = _hemisphere(50)
    with pytest.raises(ValueError):
        estimate_shading(np.zeros((50, 2)), n, np.ones(50))
    with pytest.raises(ValueError):
        fit_sh_shading(np.zeros((20, 3)), n[:20])  # fewer texels than 4 per coefficient
    with pytest.raises(ValueError):
        DelightConfig(order=3)
    with pytest.raises(ValueError):
        DelightConfig(min_shading=0.0)


def test_build_texture_delighting_recovers_a_shaded_sphere_texture():
    from digitaltwin_jax.texture import TextureConfig, albedo_scores, build_texture

    from .test_pipeline import _known_texture, _sphere_model

    from digitaltwin_jax.render import orbit_camera, render_mesh

    m = _sphere_model()
    size = 128
    true = _known_texture(size)
    R, t = orbit_camera(0.0, distance=450.0)
    vc = m.vertices @ R.T + t
    K = np.array([[700.0, 0, 160], [0, 700.0, 160], [0, 0, 1]])
    # Lambert light from the upper left (render_mesh shades sRGB values directly)
    img, _ = render_mesh(vc, m.faces, K, (320, 320), uvs=m.uvs, uv_faces=m.uv_faces, texture=true,
                         ambient=0.35, diffuse=0.65, light_dir=(-0.5, -0.6, -1.0))
    photo = (img * 255 + 0.5).astype(np.uint8)
    on = build_texture(photo, vc, K, m, config=TextureConfig(size=size, delight=DelightConfig()))
    off = build_texture(photo, vc, K, m, config=TextureConfig(size=size))  # the default: no de-lighting
    seen = on.confidence >= 0.5
    s_on, s_off = albedo_scores(on.diffuse, true, seen), albedo_scores(off.diffuse, true, seen)
    assert s_off.psnr_gain < 22 and s_on.psnr_gain > s_off.psnr_gain + 4
    assert on.lighting is not None and off.lighting is None
    # re-lighting with the fitted shading gives the photo back where the map is the (de-lit) photo
    import cv2

    from digitaltwin_jax.texture import relight_texture

    relit = relight_texture(on.diffuse, on.lighting, vc, m)
    chart = on.projected.chart_mask
    inner = on.blend_mask & (cv2.distanceTransform((~(chart & ~on.blend_mask)).astype(np.uint8), cv2.DIST_L2, 5) > 4)
    assert inner.sum() > 1000
    np.testing.assert_allclose(relit[inner], on.projected.texture[inner], atol=2e-3)
    assert np.abs(on.diffuse[inner] - on.projected.texture[inner]).max() > 0.05  # it was de-lit
