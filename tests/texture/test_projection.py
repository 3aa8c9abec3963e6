"""Texture projection: render a known UV texture through a known camera with the rasteriser, project
it back, compare; occlusion and view-angle confidence against analytic geometry."""
import types

import numpy as np
import pytest

from digitaltwin_jax.render import grid, render_mesh, sample_texture, uv_sphere
from digitaltwin_jax.texture import ProjectionConfig, project_texture, seam_pairs, uv_sampling
from digitaltwin_jax.texture.seams import dilate_texture


def _model(faces, uvs, uv_faces, eye_mask=None):
    nv = int(np.max(faces)) + 1
    return types.SimpleNamespace(
        faces=np.asarray(faces, np.int32), uvs=np.asarray(uvs, np.float32),
        uv_faces=np.asarray(uv_faces, np.int32),
        eye_mask=np.zeros(nv, bool) if eye_mask is None else eye_mask)


def _smooth_texture(h, w):
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (u + 0.5) / w, 1 - (v + 0.5) / h
    return np.stack([0.5 + 0.2 * np.sin(2 * np.pi * 2 * u) * np.cos(np.pi * 2 * v)
                     + 0.1 * np.sin(2 * np.pi * 12 * u) * np.sin(2 * np.pi * 6 * v),
                     0.4 + 0.3 * v, 0.3 + 0.2 * np.cos(2 * np.pi * u)], -1).astype(np.float32)


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def test_round_trip_render_then_project_recovers_the_texture():
    v, f, uvs, uvf = uv_sphere(48, 96, radius=80.0)
    R = np.diag([1.0, -1.0, -1.0])  # frontal: head +z toward the camera
    vc = v @ R.T + np.array([5.0, -3.0, 400.0])
    K = np.array([[900.0, 0, 256], [0, 900.0, 256], [0, 0, 1]])
    tex = _smooth_texture(128, 256)
    img, mask = render_mesh(vc, f, K, (512, 512), uvs=uvs, uv_faces=uvf, texture=tex,
                            ambient=1.0, diffuse=0.0)
    size = 256
    proj = project_texture(img, vc, K, _model(f, uvs, uvf), size=size)
    # reference: the known texture at each texel's own UV
    rows, cols = np.mgrid[0:size, 0:size]
    uv = np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], -1)
    ref = sample_texture(tex, uv)
    good = proj.confidence > 0.3
    assert good.sum() > 0.15 * size * size  # most of the front hemisphere
    psnr = _psnr(proj.texture[good], ref[good])
    print("round-trip PSNR", psnr)
    assert psnr >= 30.0, psnr
    # the back of the sphere is not seen
    back = proj.chart_mask & (np.abs(uv[..., 0] - 0.5) < 0.15)  # u = 0.5 is longitude 180 (back)
    assert (proj.confidence[back] == 0).all() and (proj.texture[back] == 0).all()


def _two_quads():
    """A small quad at z = 40 hiding the centre of a big quad at z = 0 (head frame, facing +z);
    UV: big quad on the left half, small on the right half of the map."""
    vb, fb, ub = grid(8, 8, width=120.0, height=120.0)
    vs, fs, us = grid(4, 4, width=40.0, height=40.0)
    vs = vs + np.array([0.0, 0.0, 40.0], np.float32)
    ub = ub * np.array([0.5, 1.0], np.float32)
    us = us * np.array([0.5, 1.0], np.float32) + np.array([0.5, 0.0], np.float32)
    v = np.concatenate([vb, vs])
    f = np.concatenate([fb, fs + len(vb)])
    uv = np.concatenate([ub, us])
    return v, f, uv


def test_occluded_texels_are_not_overwritten():
    v, f, uv = _two_quads()
    R, t = np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 300.0])
    vc = v @ R.T + t
    K = np.array([[500.0, 0, 200], [0, 500.0, 200], [0, 0, 1]])
    image = np.full((400, 400, 3), 0.8, np.float32)
    size = 128
    proj = project_texture(image, vc, K, _model(f, uv, f), size=size)
    # analytic shadow of the small quad on the big one: a back point (x, y, 0) is hidden when the
    # ray from the camera (at head z = 300) crosses z = 40 inside |x|, |y| < 20
    rows, cols = np.mgrid[0:size, 0:size]
    u, vv = (cols + 0.5) / size, 1 - (rows + 0.5) / size
    big = proj.chart_mask & (u < 0.5)
    xb, yb = (u / 0.5 - 0.5) * 120.0, (vv - 0.5) * 120.0
    s = (300.0 - 40.0) / 300.0  # scale of the back point's ray at z = 40
    hidden = (np.abs(xb * s) < 20.0) & (np.abs(yb * s) < 20.0)
    margin = (np.abs(np.abs(xb * s) - 20.0) > 1.5) & (np.abs(np.abs(yb * s) - 20.0) > 1.5)
    sel_h = big & hidden & margin
    sel_v = big & ~hidden & margin
    assert sel_h.sum() > 300 and sel_v.sum() > 1000
    assert (proj.confidence[sel_h] == 0).all()
    assert (proj.texture[sel_h] == 0).all()
    assert (proj.confidence[sel_v] > 0.9).all()
    np.testing.assert_allclose(proj.texture[sel_v], 0.8, atol=1e-5)
    small = proj.chart_mask & (u > 0.5)
    assert (proj.confidence[small] > 0.9).all()


def test_confidence_is_the_cosine_of_the_view_angle():
    v, f, uv = grid(6, 6, width=60.0, height=60.0)
    ang = np.deg2rad(60.0)
    Ry = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
    vc = (v @ Ry.T) @ np.diag([1.0, -1.0, -1.0]).T + np.array([0.0, 0.0, 2000.0])  # far: ~parallel rays
    K = np.array([[4000.0, 0, 100], [0, 4000.0, 100], [0, 0, 1]])
    proj = project_texture(np.ones((200, 200, 3), np.uint8) * 200, vc, K, _model(f, uv, f), size=64,
                           config=ProjectionConfig(min_cos=0.1))
    c = proj.confidence[proj.chart_mask]
    np.testing.assert_allclose(c, 0.5, atol=0.01)
    np.testing.assert_allclose(proj.texture[proj.chart_mask], 200 / 255, atol=1e-5)
    proj = project_texture(np.ones((200, 200, 3), np.uint8), vc, K, _model(f, uv, f), size=64,
                           config=ProjectionConfig(min_cos=0.6))
    assert (proj.confidence == 0).all()


def test_eye_regions_are_masked():
    v, f, uv = grid(6, 6, width=60.0, height=60.0)
    eye = np.zeros(len(v), bool)
    eye[(np.abs(v[:, 0]) < 15) & (np.abs(v[:, 1]) < 15)] = True
    vc = v @ np.diag([1.0, -1.0, -1.0]).T + np.array([0.0, 0.0, 300.0])
    K = np.array([[500.0, 0, 100], [0, 500.0, 100], [0, 0, 1]])
    proj = project_texture(np.ones((200, 200, 3)), vc, K, _model(f, uv, f, eye_mask=eye), size=64)
    rows, cols = np.mgrid[0:64, 0:64]
    x, y = ((cols + 0.5) / 64 - 0.5) * 60, (0.5 - (rows + 0.5) / 64) * 60
    assert (proj.confidence[(np.abs(x) < 9.5) & (np.abs(y) < 9.5)] == 0).all()
    assert (proj.confidence[(np.abs(x) > 21) | (np.abs(y) > 21)] > 0.9).all()


def test_image_mask_zeroes_exactly_the_texels_that_land_on_masked_pixels():
    # a frontal plane: texel (row, col) sees the pixel given in closed form; the mask keeps a
    # small disk of pixels, so most triangles touch no usable pixel (they are skipped)
    v, f, uv = grid(12, 12, width=60.0, height=60.0)
    vc = v @ np.diag([1.0, -1.0, -1.0]).T + np.array([0.0, 0.0, 300.0])
    K = np.array([[500.0, 0, 100], [0, 500.0, 100], [0, 0, 1]])
    img = np.random.default_rng(0).uniform(0, 1, (200, 200, 3)).astype(np.float32)
    pr, pc = np.mgrid[0:200, 0:200]
    mask = (pr - 80) ** 2 + (pc - 110) ** 2 < 15 ** 2
    model = _model(f, uv, f)
    full = project_texture(img, vc, K, model, size=64)
    masked = project_texture(img, vc, K, model, size=64, image_mask=mask)
    rows, cols = np.mgrid[0:64, 0:64]
    x, y = ((cols + 0.5) / 64 - 0.5) * 60, (0.5 - (rows + 0.5) / 64) * 60  # head frame, mm
    px, py = 500 * x / 300 + 100, -500 * y / 300 + 100  # pixel coordinates (corner convention)
    on = mask[np.clip(py.astype(int), 0, 199), np.clip(px.astype(int), 0, 199)]
    assert on.sum() > 100 and (full.confidence > 0).all()
    np.testing.assert_array_equal(masked.confidence, np.where(on, full.confidence, 0))
    np.testing.assert_array_equal(masked.texture, np.where(on[..., None], full.texture, 0))


def test_projection_rejects_bad_input():
    v, f, uv = grid(2, 2)
    m = _model(f, uv, f)
    K = np.eye(3)
    with pytest.raises(ValueError, match="image"):
        project_texture(np.ones((10, 10)), v + [0, 0, 5], K, m, size=16)
    with pytest.raises(ValueError, match="vertices_cam"):
        project_texture(np.ones((10, 10, 3)), v[:, :2], K, m, size=16)
    with pytest.raises(ValueError, match="sampling"):
        project_texture(np.ones((10, 10, 3)), v + [0, 0, 5], K, m, size=16,
                        sampling=uv_sampling(uv, f, 32))


def test_dilate_texture_pads_charts_and_keeps_valid_texels():
    rng = np.random.default_rng(0)
    tex = np.zeros((12, 12, 3), np.float32)
    valid = np.zeros((12, 12), bool)
    valid[3:7, 2:6] = True
    tex[valid] = rng.random((16, 3))
    out = dilate_texture(tex, valid, iterations=2)
    np.testing.assert_array_equal(out[valid], tex[valid])
    vr, vc = np.nonzero(valid)
    for r, c in [(2, 2), (1, 4), (7, 6), (4, 0)]:  # within 2 texels: the nearest valid texel
        d = np.hypot(vr - r, vc - c)
        assert d.min() <= 2
        np.testing.assert_allclose(out[r, c], tex[vr[d.argmin()], vc[d.argmin()]])
    np.testing.assert_allclose(out[11, 11], tex[valid].mean(axis=0), rtol=1e-6)  # beyond: mean fill
    grey = dilate_texture(tex[..., 0], valid, iterations=1, fill_rest=False)
    assert grey.shape == (12, 12) and grey[11, 11] == 0


def test_seam_pairs_join_the_two_sides_of_a_uv_seam():
    v, f, uvs, uvf = uv_sphere(16, 32, radius=50.0)
    s = uv_sampling(uvs, uvf, 128)
    pairs = seam_pairs(s, v, f)
    assert len(pairs) > 40
    r, c = np.divmod(pairs, 128)
    # away from the poles (where whole texel rows meet at one point) every pair links a texel
    # near u = 0 with one near u = 1: the two sides of the equirectangular seam
    mid = (r.min(axis=1) > 16) & (r.max(axis=1) < 112)
    assert mid.sum() > 40
    lo = np.minimum(c[mid, 0], c[mid, 1])
    hi = np.maximum(c[mid, 0], c[mid, 1])
    assert ((lo <= 2) & (hi >= 125)).all()
    assert np.abs(r[mid, 0] - r[mid, 1]).max() <= 2
