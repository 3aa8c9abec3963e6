"""build_texture end to end on a synthetic UV-mapped mesh (and on the shipped head when present)."""
import types
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from digitaltwin_jax.render import orbit_camera, render_mesh, uv_sphere
from digitaltwin_jax.texture import (
    TextureBank,
    TextureConfig,
    build_texture,
    default_texture_bank,
    write_confidence,
    write_texture,
)
from digitaltwin_jax.texture.bank import BankEntry


def _sphere_model():
    v, f, uv, uvf = uv_sphere(32, 64, radius=90.0)
    return types.SimpleNamespace(vertices=v, faces=f, uvs=uv, uv_faces=uvf, eye_mask=np.zeros(len(v), bool))


def _known_texture(n):
    v, u = np.mgrid[0:n, 0:n].astype(np.float32)
    u, v = (u + 0.5) / n, 1 - (v + 0.5) / n
    return np.stack([0.6 + 0.15 * np.sin(2 * np.pi * 3 * u), 0.45 + 0.1 * np.cos(2 * np.pi * 2 * v),
                     0.35 + 0.05 * np.sin(2 * np.pi * 5 * u)], -1).astype(np.float32)


def _photo(m, tex):
    R, t = orbit_camera(0.0, distance=450.0)
    vc = m.vertices @ R.T + t
    K = np.array([[700.0, 0, 160], [0, 700.0, 160], [0, 0, 1]])
    img, _ = render_mesh(vc, m.faces, K, (320, 320), uvs=m.uvs, uv_faces=m.uv_faces, texture=tex,
                         ambient=1.0, diffuse=0.0, background=(0.1, 0.2, 0.9))
    return (img * 255 + 0.5).astype(np.uint8), vc, K


def test_build_texture_poisson_mode_keeps_photo_gradients_bank_elsewhere_and_pads_charts():
    m = _sphere_model()
    size = 128
    true = _known_texture(size)
    photo, vc, K = _photo(m, true)
    bank_tex = np.zeros((size, size, 3), np.uint8)
    bank_tex[:] = (200, 150, 120)
    bank = TextureBank((BankEntry("flat", texture=bank_tex, base_color=np.array([0.78, 0.59, 0.47], np.float32)),))
    cfg = TextureConfig(size=size, fade=0.0, seams=True, blend="poisson", color_transfer=False, delight=None)
    res = build_texture(photo, vc, K, m, bank=bank, config=cfg)
    assert res.diffuse.shape == (size, size, 3) and res.diffuse.dtype == np.float32
    assert res.bank_index == 0 and res.bank_rule == "tone"
    chart = res.projected.chart_mask
    # outside the blend region the bank texture is kept exactly
    out = chart & ~res.blend_mask
    assert out.sum() > 1000
    np.testing.assert_allclose(res.diffuse[out], np.broadcast_to(bank_tex[0, 0] / 255.0, (out.sum(), 3)), atol=1e-6)
    # inside (away from its border) the photo's gradients are kept: f - photo is harmonic, so its
    # discrete Laplacian vanishes
    import cv2

    inner = cv2.erode(res.blend_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert inner.sum() > 1000
    d = res.diffuse.astype(np.float64) - res.projected.texture
    lap = 4 * d[1:-1, 1:-1] - d[:-2, 1:-1] - d[2:, 1:-1] - d[1:-1, :-2] - d[1:-1, 2:]
    assert np.abs(lap[inner[1:-1, 1:-1]]).max() < 2e-3
    # and the photo does come through: the blended texture correlates with the true one
    g1 = np.diff(res.diffuse[..., 0], axis=1)[inner[:, 1:]]
    g2 = np.diff(true[..., 0], axis=1)[inner[:, 1:]]
    assert np.corrcoef(g1, g2)[0, 1] > 0.95
    # charts padded: no dark texel anywhere (the bank is bright, the photo too)
    assert res.diffuse.min() > 0.2


def _flat_bank(size, rgb8=(90, 140, 200)):
    tex = np.zeros((size, size, 3), np.uint8)
    tex[:] = rgb8
    return TextureBank((BankEntry("flat", texture=tex, base_color=np.asarray(rgb8, np.float32) / 255),))


def test_build_texture_band_mode_keeps_the_photo_and_recolours_the_bank():
    import cv2

    from digitaltwin_jax.texture import seam_scores

    from .test_blend import LAB_TOL, lab_ref

    m = _sphere_model()
    size = 256
    true = _known_texture(size)
    photo, vc, K = _photo(m, true)
    res = build_texture(photo, vc, K, m, bank=_flat_bank(size), config=TextureConfig(size=size, delight=None))
    core = res.blend_mask
    chart = res.projected.chart_mask
    # inside the photo region, away from its border, the map is the photo (the true texture)
    dist = cv2.distanceTransform((~(chart & ~core)).astype(np.uint8), cv2.DIST_L2, 5)
    inner = core & (dist > 8)
    assert inner.sum() > 2000
    np.testing.assert_array_equal(res.diffuse[inner], res.projected.texture[inner])
    assert 10 * np.log10(1 / np.mean((res.diffuse[inner] - true[inner]) ** 2)) > 35
    # far from it, the (blue) bank takes the median CIELAB colour of the confidently seen texels
    far = chart & (cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 5) > 40)
    assert far.sum() > 1000
    seen = res.confidence >= 0.5
    np.testing.assert_allclose(lab_ref(res.diffuse[far]).mean(0), np.median(lab_ref(res.projected.texture[seen]), 0),
                               atol=LAB_TOL + 0.5)
    # no edge where they meet: the gradient across the border is no larger than inside either side,
    # unlike pasting the photo onto the recoloured bank
    s = seam_scores(res.diffuse, core, chart, radius=2)
    assert s.gradient_jump < 1.5 * max(s.gradient_inside, s.gradient_outside)
    pasted = np.where(core[..., None], res.projected.texture, res.diffuse[far].mean(0))
    p = seam_scores(pasted, core, chart, radius=2)
    assert p.gradient_jump > 3 * max(p.gradient_inside, p.gradient_outside)


def test_texture_config_validation():
    with pytest.raises(ValueError):
        TextureConfig(blend="alpha")
    with pytest.raises(ValueError):
        TextureConfig(band_width=-1)


def test_bank_selection_follows_the_embedding():
    m = _sphere_model()
    size = 64
    photo, vc, K = _photo(m, _known_texture(size))
    bank = default_texture_bank(4, seed=0)
    e = np.zeros(128, np.float32)
    entries = list(bank.entries)
    for k, emb in ((2, e + 1.0), (3, e - 0.2)):
        entries[k] = BankEntry(entries[k].name, embedding=emb, params=entries[k].params,
                               base_color=entries[k].base_color)
    res = build_texture(photo, vc, K, m, bank=TextureBank(tuple(entries)), embedding=e,
                        config=TextureConfig(size=size, gen_size=64))
    assert (res.bank_index, res.bank_rule) == (3, "identity")


def test_write_texture_and_confidence(tmp_path):
    tex = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    p = tmp_path / "diffuse.png"
    write_texture(p, tex)
    back = iio.imread(p)
    np.testing.assert_array_equal(back, (tex * 255 + 0.5).astype(np.uint8))
    write_confidence(tmp_path / "conf.png", tex[..., 0])
    assert iio.imread(tmp_path / "conf.png").shape == (32, 32)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["conf.png", "diffuse.png"]
    with pytest.raises(ValueError):
        write_texture(p, tex[..., 0])


ASSET = Path(__file__).resolve().parents[2] / "digitaltwin_jax" / "assets" / "ict_head_low.npz"


@pytest.mark.skipif(not ASSET.exists(), reason="head model asset not built")
def test_shipped_head_round_trip():
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.texture import SkinParams, bake_procedural, skin_layout

    m = load_head_model("low")
    size = 256
    true = bake_procedural(SkinParams(tone=0.2, seed=9), m.vertices, m.faces, m.uvs, m.uv_faces, size,
                           layout=skin_layout(m), gen_size=256)
    R, t = orbit_camera(20.0, distance=650.0, target=m.vertices.mean(axis=0))
    vc = m.vertices @ R.T + t
    K = np.array([[1100.0, 0, 240], [0, 1100.0, 320], [0, 0, 1]])
    img, _ = render_mesh(vc, m.faces, K, (640, 480), uvs=m.uvs, uv_faces=m.uv_faces, texture=true,
                         ambient=1.0, diffuse=0.0)
    photo = (img * 255 + 0.5).astype(np.uint8)
    res = build_texture(photo, vc, K, m, config=TextureConfig(size=size, gen_size=128))
    good = res.confidence > 0.5
    assert good.mean() > 0.1
    psnr = 10 * np.log10(1.0 / np.mean((res.projected.texture[good] - true[good]) ** 2))
    assert psnr > 30.0
    # the eyes are masked, the back of the head is not seen
    assert np.isfinite(res.diffuse).all() and res.diffuse.min() >= 0
    # drawn back from the same camera, the texture reproduces the photo inside the face (issue 19);
    # whole-region Poisson cloning into the bank does not (it pulls the face toward the bank's tone)
    from digitaltwin_jax.render import project_points
    from digitaltwin_jax.texture import rerender_scores

    lm = project_points(vc[m.landmark_indices], K)[:, :2]
    score = rerender_scores(photo, vc, m.faces, K, m.uvs, m.uv_faces, res.diffuse, lm)
    assert score.psnr > 30.0 and score.ssim > 0.9
    old = build_texture(photo, vc, K, m, config=TextureConfig(size=size, gen_size=128, blend="poisson",
                                                                color_transfer=False))
    assert rerender_scores(photo, vc, m.faces, K, m.uvs, m.uv_faces, old.diffuse, lm).psnr < score.psnr - 3


def test_add_photo_entry_bakes_the_photo_into_a_new_bank_entry():
    from digitaltwin_jax.texture import add_photo_entry

    m = _sphere_model()
    size = 64
    true = _known_texture(size)
    photo, vc, K = _photo(m, true)
    bank = default_texture_bank(2, seed=0)
    emb = np.linspace(-1, 1, 128).astype(np.float32)
    new = add_photo_entry(bank, "subject-1", photo, vc, K, m, emb, size=size,
                          config=TextureConfig(gen_size=64))
    assert len(new) == 3 and len(bank) == 2  # immutable: a new bank
    e = new.entries[-1]
    assert e.name == "subject-1" and e.params is None
    assert e.texture.shape == (size, size, 3) and e.texture.dtype == np.uint8
    np.testing.assert_array_equal(e.embedding, emb)
    assert new.select(emb + 0.01) == (2, "identity")
    # the photographed side carries the photo's colours (up to the Poisson offset)
    tex = new.texture(2, m, size)
    res = build_texture(photo, vc, K, m, bank=bank, config=TextureConfig(size=size, gen_size=64))
    good = res.confidence > 0.6
    np.testing.assert_allclose(tex[good], res.diffuse[good], atol=1 / 255 + 1e-6)
