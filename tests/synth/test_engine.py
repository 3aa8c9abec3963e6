"""The renderer: ground truth consistent with the image, determinism, eye masking."""
import dataclasses

import numpy as np
import pytest

from digitaltwin_jax.synth import eyes as eyes_mod
from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer, project_landmarks
from digitaltwin_jax.synth.scene import SceneConfig, sample_scene
from digitaltwin_jax.synth.shapes import GaussianIdentitySource


def _scene(model, bank, i, size=96, **kw):
    return sample_scene(i, 5, SceneConfig(image_size=size, **kw), GaussianIdentitySource(model), model, len(bank))


def test_landmarks_are_the_projection_of_the_ground_truth(low_model, small_bank, renderer, project_reference):
    for i in range(3):
        s = _scene(low_model, small_bank, i)
        res = renderer.render(s)
        ref = project_reference(s.vertices[low_model.landmark_indices], s.rotation, s.translation, s.K)
        np.testing.assert_allclose(res.landmarks, ref, atol=1e-3)
        np.testing.assert_allclose(
            project_landmarks(s.vertices, low_model.landmark_indices, s.rotation, s.translation, s.K), ref, atol=1e-3)


def test_silhouette_matches_projected_geometry(low_model, small_bank, renderer):
    """Rendered coverage vs an independent check: the projected nose tip and inner landmarks are
    covered, and image corners far from the head are not."""
    s = _scene(low_model, small_bank, 4)
    res = renderer.render(s)
    assert res.image.shape == (96, 96, 3) and res.image.dtype == np.uint8
    for p in res.landmarks[27:36]:  # nose: never occluded in +-15 degree poses
        x, y = int(p[0]), int(p[1])
        assert res.face_alpha[y, x] == 1.0
    assert 0.0 <= res.face_alpha.min() and res.face_alpha.max() == 1.0


def test_rendering_is_deterministic(low_model, small_bank, renderer):
    s = _scene(low_model, small_bank, 7)
    a = renderer.render(s)
    b = renderer.render(s)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.eye_alpha, b.eye_alpha)


def test_masked_eyes_are_painted_with_the_fill_colour(low_model, small_bank, renderer):
    s = dataclasses.replace(_scene(low_model, small_bank, 2, size=128), jpeg_quality=0, noise_sigma=0.0)
    res = renderer.render(s)
    full = res.eye_alpha == 1.0
    assert full.sum() > 10
    np.testing.assert_array_equal(res.image[full], 0)  # default fill (0, 0, 0)
    # the eye mask lies inside the eye landmarks' bounding boxes (grown by 3 px)
    ys, xs = np.nonzero(res.eye_alpha > 0)
    lm = res.landmarks
    boxes = [(lm[36:42].min(0) - 3, lm[36:42].max(0) + 3), (lm[42:48].min(0) - 3, lm[42:48].max(0) + 3)]
    inside = np.zeros(len(xs), bool)
    for lo, hi in boxes:
        inside |= (xs + 0.5 >= lo[0]) & (xs + 0.5 <= hi[0]) & (ys + 0.5 >= lo[1]) & (ys + 0.5 <= hi[1])
    assert inside.all()


def test_eyeball_mode_renders_spheres(low_model, small_bank):
    r = SceneRenderer(low_model, small_bank, RenderConfig(eyes="eyeballs", ao_directions=4))
    s = dataclasses.replace(_scene(low_model, small_bank, 2, size=128), jpeg_quality=0, noise_sigma=0.0)
    res = r.render(s)
    assert res.eye_alpha.sum() > 10  # eyeball coverage
    assert res.image[res.eye_alpha == 1.0].mean() > 5  # not painted black


def test_full_supersampling_agrees_with_per_pixel_shading(low_model, small_bank):
    base = _scene(low_model, small_bank, 9)
    s = dataclasses.replace(base, jpeg_quality=0, noise_sigma=0.0, blur_sigma=0.0)
    a = SceneRenderer(low_model, small_bank, RenderConfig(shading="pixel", ao_directions=4)).render(s)
    b = SceneRenderer(low_model, small_bank, RenderConfig(shading="sample", ao_directions=4)).render(s)
    np.testing.assert_array_equal(a.face_alpha, b.face_alpha)
    diff = np.abs(a.image.astype(int) - b.image.astype(int))
    assert np.median(diff) <= 2 and diff.mean() < 4


def test_openings_are_found_and_capped(low_model):
    op = eyes_mod.find_openings(low_model.vertices, low_model.faces, low_model.landmark_indices)
    v = low_model.vertices
    lm = v[low_model.landmark_indices]
    assert np.linalg.norm(v[op.eye_right].mean(0) - lm[36:42].mean(0)) < 10
    assert np.linalg.norm(v[op.eye_left].mean(0) - lm[42:48].mean(0)) < 10
    ex = eyes_mod.opening_geometry(v, op)
    faces = np.concatenate([low_model.faces, ex.faces])
    loops = eyes_mod.boundary_loops(faces)
    assert len(loops) == len(eyes_mod.boundary_loops(low_model.faces)) - 3  # only the neck is left open
    # cap faces face forward (+z, like the face around them)
    allv = np.concatenate([v, ex.vertices])
    t = allv[ex.faces]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    assert (n[:, 2] > 0).mean() > 0.9


def test_boundary_loops_of_a_grid_with_a_hole():
    n = 6
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    faces = []
    for i in range(n):
        for j in range(n):
            if (i, j) in ((2, 2), (2, 3)):
                continue  # a 1 x 2 hole
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j + 1], idx[i + 1, j]
            faces += [[a, b, c], [a, c, d]]
    loops = eyes_mod.boundary_loops(np.array(faces))
    assert sorted(len(lp) for lp in loops) == [6, 4 * n]


def test_bad_config_raises():
    with pytest.raises(ValueError):
        RenderConfig(eyes="glass")
    with pytest.raises(ValueError):
        RenderConfig(shading="ray")


def test_albedo_lookup_matches_reference_bilinear(low_model, small_bank, renderer):
    """The engine's albedo lookup (linear light, bilinear) against the shared shading.sample_texture
    applied to the decoded map."""
    from digitaltwin_jax.render.colorspace import srgb_to_linear
    from digitaltwin_jax.render.shading import sample_texture

    rng = np.random.default_rng(0)
    uv = rng.uniform(0.02, 0.98, (500, 2)).astype(np.float32)
    alb, spec = renderer._sample_albedo(1, uv)
    ref = sample_texture(srgb_to_linear(small_bank.maps[1] / 255.0), uv)
    np.testing.assert_allclose(alb, ref, atol=2e-3)
    np.testing.assert_allclose(spec, sample_texture(small_bank.specular, uv), atol=2e-3)
