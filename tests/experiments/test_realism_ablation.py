"""experiments/realism_ablation.py and realism_photo_split.py (issue 14 item 1): the variants change
only their ingredient, the camera effects added afterwards reproduce the engine's, the split is
person-disjoint."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import load  # noqa: E402
from digitaltwin_jax.model.head_model import asset_path  # noqa: E402

X = load("realism_ablation")
S = load("realism_photo_split")
needs_low = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")


@pytest.fixture(scope="module")
def setup():
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry
    from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer

    m = load_head_model("low")
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 128)
    bank = procedural_bank(geom, 2, seed=3)
    return m, SceneRenderer(m, bank, RenderConfig(eyes="eyeballs", shading="pixel", ao_directions=4))


def _scene(m, i, post=None):
    from digitaltwin_jax.synth.scene import PostConfig, SceneConfig, sample_scene
    from digitaltwin_jax.synth.shapes import GaussianIdentitySource

    cfg = SceneConfig(image_size=96, expressions=True, post=post or PostConfig(blur_sigma=(0.8, 1.2),
                      noise_sigma=(0.02, 0.03), jpeg_probability=1.0, jpeg_quality=(50, 60)))
    return sample_scene(i, 11, cfg, GaussianIdentitySource(m), m, 2)


@needs_low
def test_camera_effects_after_a_clean_render_match_the_engine(setup):
    """Reference: the engine's own render of the same scene with its camera effects."""
    m, r = setup
    for i in range(2):
        s = _scene(m, i)
        assert s.blur_sigma > 0.05 and s.noise_sigma > 0 and s.jpeg_quality > 0
        direct = r.render(s).image.astype(np.int16)
        clean = r.render(X.post_scene("no_camera_effects", s)).image
        ours = X.camera_effects(clean, s, r).astype(np.int16)
        # before JPEG the only difference is the blur acting on the 8-bit clean image: one code at most
        s1 = dataclasses.replace(s, jpeg_quality=0)
        d1 = np.abs(X.camera_effects(clean, s1, r).astype(np.int16) - r.render(s1).image.astype(np.int16))
        assert d1.max() <= 1
        # JPEG turns those one-code differences into block-quantisation differences of a few codes
        assert np.abs(ours - direct).mean() < 1.0
        # without blur the path is exact up to JPEG (which sees identical input)
        s0 = X.post_scene("no_blur", s)
        np.testing.assert_array_equal(X.camera_effects(clean, s0, r), r.render(s0).image)


@needs_low
def test_variants_change_only_their_ingredient(setup):
    m, _ = setup
    s = _scene(m, 3)
    assert np.any(s.expression)
    n = X.modify_scene("neutral", s, m)
    # the neutral head is the scene's head minus the blendshape offsets (numpy reference)
    ref = s.vertices - np.einsum("m,mvc->vc", s.expression, np.asarray(m.expression_basis, np.float64))
    np.testing.assert_allclose(n.vertices, ref, atol=1e-4)
    assert not np.any(n.expression)
    for g, field in (("one_light", "lighting"), ("studio_background", "background_kind")):
        v = X.modify_scene(g, s, m)
        same = lambda name: np.array_equal(np.asarray(getattr(s, name), dtype=object),  # noqa: E731
                                           np.asarray(getattr(v, name), dtype=object))
        changed = [f.name for f in dataclasses.fields(s) if not same(f.name)]
        assert set(changed) <= {field, "preset"}
    z = X.post_scene("no_camera_effects", s)
    assert (z.blur_sigma, z.noise_sigma, z.jpeg_quality) == (0.0, 0.0, 0)
    assert X.post_scene("no_noise", s).blur_sigma == s.blur_sigma


def test_config_variants():
    base = X.group_config("recipe", 8, 5)
    assert X.group_config("masked_eyes", 8, 5).render.eyes == "masked" and base.render.eyes == "eyeballs"
    assert X.group_config("procedural_skin", 8, 5).albedo_source == "procedural"
    assert base.albedo_source == "texture-bank"
    with pytest.raises(ValueError, match="skin-bank"):
        X.group_config("photo_skin", 8, 5)


def test_fast_frechet_matches_the_matrix_square_root():
    from digitaltwin_jax.evaluation.fidelity import frechet_distance

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8))
    y = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8)) + 0.5
    assert X.frechet_fast(x, y) == pytest.approx(frechet_distance(x, y), rel=1e-6)


def test_first_faces_and_frechet_bootstrap():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 4))
    emb[[1, 4]] = np.nan
    e, _, _, idx = X.first_faces(emb, np.zeros((30, 68, 2)), np.zeros((30, 68, 2)), 5)
    assert list(idx) == [0, 2, 3, 5, 6]
    q = rng.normal(size=(40, 4)) + 3.0
    r = rng.normal(size=(200, 4))
    b = X.frechet_bootstrap(r, r, q, n_boot=50)
    # closed form for N(0, I) vs N(3, I) in 4-d: |mu|^2 = 36, covariance term 0; the estimate's
    # standard error is about 2 |mu| sd(mean of q) = 2 * 6 / sqrt(40) ~ 1.9
    assert 0.8 < b["sd"] < 4.0 and b["sd_diff"] == 0.0
    ci = X._ci(X.frechet_fast(r, q), b["sd"])
    assert ci["lo"] < 36.0 < ci["hi"]


def test_split_is_disjoint_deterministic_and_balanced():
    names = [f"{i:06d}.jpg" for i in range(101)]
    a, b = S.split_names(names)
    assert len(a) == 50 and len(b) == 51 and not set(a) & set(b) and sorted(a + b) == names
    assert S.split_names(list(reversed(names))) == (a, b)
