"""Eyeballs of the avatar (texture/eyes.py): colours read from a painted photo, sphere geometry
against closed forms (radius, enclosed volume, clearance from the head), the texture layout."""
import cv2
import numpy as np
import pytest

from digitaltwin_jax.render.shading import sample_texture
from digitaltwin_jax.texture.eyes import (
    DEFAULT_IRIS,
    DEFAULT_SCLERA,
    EyeColours,
    EyeConfig,
    build_eyes,
    eye_texture,
    eyeball_mesh,
    preview_mesh,
    sample_eye_colours,
)


def _painted_eye_photo(iris_rgb, sclera_rgb):
    """A 200 x 300 skin-coloured photo with two almond eyes: sclera, an iris disc and a black pupil;
    68 landmarks with the eye points (36-47) on the almonds, the rest far away."""
    img = np.full((200, 300, 3), (200, 160, 140), np.uint8)
    lm = np.full((68, 2), 5.0)
    for k, cx in ((36, 100.0), (42, 200.0)):
        pts = np.array([[cx - 30, 100], [cx - 12, 88], [cx + 12, 88], [cx + 30, 100], [cx + 12, 112], [cx - 12, 112]])
        lm[k:k + 6] = pts
        cv2.fillPoly(img, [np.round(pts - 0.5).astype(np.int32)], sclera_rgb)
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(pts - 0.5).astype(np.int32)], 1)
        disc = np.zeros_like(mask)
        cv2.circle(disc, (int(cx), 100), 11, 1, -1)
        img[(disc > 0) & (mask > 0)] = iris_rgb
        cv2.circle(img, (int(cx), 100), 4, (5, 5, 5), -1)
    return img, lm


def test_sample_eye_colours_reads_the_painted_iris_and_sclera():
    iris, sclera = (40, 90, 150), (230, 225, 215)
    img, lm = _painted_eye_photo(iris, sclera)
    col = sample_eye_colours(img, lm)
    assert col.sampled and col.sclera_sampled and col.warning is None and col.pixels > 500
    np.testing.assert_allclose(col.iris * 255, iris, atol=1.0)
    np.testing.assert_allclose(col.sclera * 255, sclera, atol=1.0)


def test_sclera_of_skin_coloured_eye_pixels_is_the_default():
    # narrow eyes behind glasses: the brightest pixels are lids and skin (far from neutral)
    iris, skinlike = (40, 30, 25), (200, 120, 100)
    img, lm = _painted_eye_photo(iris, skinlike)
    col = sample_eye_colours(img, lm)
    assert col.sampled and not col.sclera_sampled
    np.testing.assert_allclose(col.sclera, DEFAULT_SCLERA, atol=1e-6)
    np.testing.assert_allclose(col.iris * 255, iris, atol=1.0)


def test_sample_eye_colours_falls_back_with_a_warning():
    img, lm = _painted_eye_photo((40, 90, 150), (230, 225, 215))
    lm[36:48] = np.nan
    col = sample_eye_colours(img, lm)
    assert not col.sampled and "missing" in col.warning
    np.testing.assert_allclose(col.iris, DEFAULT_IRIS, atol=1e-6)
    lm2 = np.full((68, 2), 50.0)  # degenerate eyes: no pixels
    col = sample_eye_colours(img, lm2)
    assert not col.sampled and "eye pixels" in col.warning
    with pytest.raises(ValueError, match="landmarks"):
        sample_eye_colours(img, lm[:60])


@pytest.fixture(scope="module")
def low():
    from digitaltwin_jax import load_head_model

    return load_head_model("low")


def _sphere_count(cfg):
    return 2 + (cfg.n_lat - 1) * cfg.n_lon


def test_eyeballs_are_spheres_behind_the_openings(low):
    cfg = EyeConfig()
    v, f, uv, uvf, centres, axes = eyeball_mesh(low.vertices, low, None, cfg)
    head = np.asarray(low.vertices, np.float64)
    ns = _sphere_count(cfg)
    per_eye = len(v) // 2
    for e in range(2):
        sv = v[e * per_eye: e * per_eye + ns]
        np.testing.assert_allclose(np.linalg.norm(sv - centres[e], axis=1), cfg.radius, rtol=1e-12)
        # enclosed volume (divergence theorem) of the sphere's faces: outward and closed
        sf = f[(f >= e * per_eye).all(1) & (f < e * per_eye + ns).all(1)]
        tri = v[sf]
        vol = np.einsum("fk,fk->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
        exact = 4.0 / 3.0 * np.pi * cfg.radius ** 3
        assert 0.97 * exact < vol < exact  # an inscribed polyhedron: a little less than the sphere
        # no head vertex within the clearance (checked on the whole head, not only near the eye)
        assert np.linalg.norm(head - centres[e], axis=1).min() >= cfg.radius + cfg.clearance - 1e-9
        np.testing.assert_allclose(axes[e], [0, 0, 1], atol=1e-12)
    # the right eye (landmarks 36-41) is at -x in the head frame, the eyes symmetric about x = 0
    assert centres[0, 0] < 0 < centres[1, 0]
    np.testing.assert_allclose(centres[0] * [-1, 1, 1], centres[1], atol=1e-3)
    # the front of each ball is within a few mm of its opening (visible through it)
    front = centres + cfg.radius * axes
    lm_eyes = head[np.asarray(low.landmark_indices)[36:48]].reshape(2, 6, 3).mean(axis=1)
    assert np.all(np.abs(front[:, 2] - lm_eyes[:, 2]) < 6.0)


def test_gaze_is_clamped_to_max_angle(low):
    cfg = EyeConfig(max_gaze_deg=20.0)
    _, _, _, _, centres, axes = eyeball_mesh(low.vertices, low, np.array([5000.0, 0.0, 100.0]), cfg)
    ang = np.degrees(np.arccos(axes[:, 2]))
    np.testing.assert_allclose(ang, 20.0, atol=1e-9)
    assert np.all(axes[:, 0] > 0)  # turned toward +x
    _, _, _, _, centres, axes = eyeball_mesh(low.vertices, low, np.array([0.0, 35.0, 600.0]), cfg)
    want = np.array([0.0, 35.0, 600.0]) - centres
    np.testing.assert_allclose(axes, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-12)


def test_texture_layout_puts_pupil_iris_and_sclera_at_their_angles(low):
    cfg = EyeConfig(texture_size=256)
    col = EyeColours(np.array([0.2, 0.5, 0.3], np.float32), np.array([0.9, 0.9, 0.85], np.float32), 100, True)
    tex = eye_texture(col, cfg).astype(np.float32) / 255.0
    v, f, uv, uvf, centres, axes = eyeball_mesh(low.vertices, low, None, cfg)
    ns = _sphere_count(cfg)
    sv = v[:ns]
    theta = np.arccos(np.clip((sv - centres[0]) @ axes[0] / cfg.radius, -1, 1))
    # a vertex's colour through its uv (every corner of a vertex has one uv except at the back pole)
    corner_uv = np.zeros((ns, 2))
    m = uvf[:len(f)][(f < ns).all(1)]
    corner_uv[f[(f < ns).all(1)].ravel()] = uv[m.ravel()]
    got = sample_texture(tex, corner_uv)
    pupil = theta < cfg.pupil_angle - 0.03
    iris = (theta > cfg.pupil_angle + 0.05) & (theta < 0.7 * cfg.iris_angle)
    sclera = (theta > cfg.iris_angle + 0.05) & (theta < 2.5)
    assert pupil.sum() >= 1 and iris.sum() >= 10 and sclera.sum() >= 100
    assert np.all(got[pupil].max(axis=1) < 0.06)
    np.testing.assert_allclose(got[iris].mean(axis=0), col.iris, atol=0.03)
    np.testing.assert_allclose(got[sclera], np.broadcast_to(col.sclera, got[sclera].shape), atol=0.01)


def test_build_eyes_and_preview_atlas(low):
    img, lm = _painted_eye_photo((40, 90, 150), (230, 225, 215))
    eyes = build_eyes(img, lm, low.vertices, low, rotation=np.eye(3), translation=np.array([0, 0, 600.0]))
    assert eyes.vertices.dtype == np.float32 and eyes.faces.dtype == np.int32
    assert eyes.faces.max() < len(eyes.vertices) and eyes.uv_faces.max() < len(eyes.uvs)
    tex = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    v, f, uv, uvf, atlas = preview_mesh(low.vertices, low.faces, low.uvs, low.uv_faces, tex, eyes)
    assert atlas.shape == (64, 128, 3)
    # the head's colours through the atlas equal the head map's; the eyes' equal the eye map's
    q = np.random.default_rng(1).random((50, 2)) * 0.98 + 0.01
    F = len(low.faces)
    np.testing.assert_allclose(sample_texture(atlas, q * [0.5, 1.0]), sample_texture(tex, q), atol=1e-6)
    eye_map = cv2.resize(eyes.texture.astype(np.float32) / 255, (64, 64), interpolation=cv2.INTER_AREA)
    e_uv = eyes.uvs[eyes.uv_faces[:20].ravel()]
    np.testing.assert_allclose(sample_texture(atlas, uv[uvf[F:F + 20].ravel()]), sample_texture(eye_map, e_uv), atol=1e-5)
    assert len(v) == len(low.vertices) + len(eyes.vertices) and len(f) == F + len(eyes.faces)
