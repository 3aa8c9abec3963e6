"""render_mesh / shading tests against closed forms (ray-traced sphere, texture lookups)."""
import numpy as np
import pytest

from digitaltwin_jax.camera import frontal_rotation
from digitaltwin_jax.render import (
    grid,
    icosphere,
    look_at,
    orbit_camera,
    preview_cameras,
    render_mesh,
    render_previews,
    sample_texture,
    vertex_normals,
)


def _ray_sphere(K, h, w, centre, radius):
    """Per pixel centre: hit mask, hit point and normal of the exact sphere (float64 ray casting)."""
    ys, xs = np.mgrid[0:h, 0:w]
    pix = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs, dtype=float)], -1)
    d = pix @ np.linalg.inv(K).T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    b = d @ centre
    disc = b**2 - (centre @ centre - radius**2)
    hit = disc > 0
    t = b - np.sqrt(np.where(hit, disc, 0))
    X = t[..., None] * d
    n = (X - centre) / radius
    # how deep inside the silhouette (1 = centre, 0 = tangent)
    depth_in = np.sqrt(np.maximum(disc, 0)) / radius
    return hit, X, n, depth_in


@pytest.mark.parametrize("specular", [0.0, 0.5])
def test_sphere_shading_matches_lambert_blinn_phong_closed_form(specular):
    v, f = icosphere(5, 50.0)
    centre = np.array([5.0, -3.0, 300.0])
    K = np.array([[320.0, 0, 64], [0, 320.0, 64], [0, 0, 1]])
    light = np.array([1.0, -1.0, -1.0]) / np.sqrt(3)
    ambient, diffuse, shininess = 0.1, 0.9, 20.0
    img, mask = render_mesh(v + centre, f, K, (128, 128), light_dir=light, ambient=ambient,
                            diffuse=diffuse, specular=specular, shininess=shininess)
    hit, X, n, depth_in = _ray_sphere(K, 128, 128, centre, 50.0)
    ndl = np.maximum(n @ light, 0)
    view = -X / np.linalg.norm(X, axis=-1, keepdims=True)
    hv = view + light
    hv /= np.linalg.norm(hv, axis=-1, keepdims=True)
    spec = np.where(n @ light > 0, np.maximum((n * hv).sum(-1), 0) ** shininess, 0)
    ref = np.clip(0.8 * (ambient + diffuse * ndl) + specular * spec, 0, 1)
    core = hit & (depth_in > 0.2)  # away from the faceted silhouette
    assert core.sum() > 4000
    err = np.abs(img[..., 0][core] - ref[core])
    assert err.mean() < 2e-3
    assert err.max() < 0.03
    assert (mask[core] == 1).all()
    assert (mask[~hit] == 0).all() and (img[~hit] == 0).all()


def test_vertex_normals_of_sphere_are_radial():
    v, f = icosphere(3)
    n = vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-6)
    assert np.abs(n - v / np.linalg.norm(v, axis=1, keepdims=True)).max() < 0.02
    # slow reference: loop over faces accumulating area vectors
    ref = np.zeros((len(v), 3))
    for a, b, c in f:
        cr = np.cross(v[b] - v[a], v[c] - v[a]).astype(np.float64)
        ref[[a, b, c]] += cr
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(n, ref, atol=1e-6)


def _bilinear_reference(tex, u, v):
    """Straightforward scalar bilinear lookup, OBJ convention (row 0 is the top, v = 1)."""
    h, w = tex.shape[:2]
    x = min(max(u * w - 0.5, 0), w - 1)
    y = min(max((1 - v) * h - 0.5, 0), h - 1)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return ((1 - fx) * (1 - fy) * tex[y0, x0] + fx * (1 - fy) * tex[y0, x1]
            + (1 - fx) * fy * tex[y1, x0] + fx * fy * tex[y1, x1])


def test_sample_texture_bilinear_and_obj_orientation():
    rng = np.random.default_rng(1)
    tex = rng.random((7, 9, 3)).astype(np.float32)
    uv = rng.uniform(-0.1, 1.1, (50, 2))
    got = sample_texture(tex, uv)
    ref = np.array([_bilinear_reference(tex, a, b) for a, b in uv])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # v = 1 is the top row, v = 0 the bottom row
    np.testing.assert_allclose(sample_texture(tex, [[0.5 / 9, 1.0]])[0], tex[0, 0], atol=1e-6)
    np.testing.assert_allclose(sample_texture(tex, [[0.5 / 9, 0.0]])[0], tex[-1, 0], atol=1e-6)


def test_textured_quad_through_camera_matches_ray_cast_lookup():
    rng = np.random.default_rng(2)
    tex = rng.random((16, 16, 3)).astype(np.float32)
    tex[:8, :, 0] = 1.0  # top half (high v) red channel saturated
    v, f, uvs = grid(4, 4, width=80.0, height=80.0)  # z = 0 plane facing +z (head frame)
    R, t = frontal_rotation(), np.array([0.0, 0.0, 200.0])
    vc = v @ R.T + t
    K = np.array([[150.0, 0, 40], [0, 150.0, 40], [0, 0, 1]])
    img, mask = render_mesh(vc, f, K, (80, 80), uvs=uvs, texture=tex, ambient=1.0, diffuse=0.0)
    assert img[12:38, 15:65, 0].min() > 0.99  # the top of the image shows the top of the texture
    rows, cols = np.nonzero(mask > 0)
    for r, c in zip(rows[::37], cols[::37]):
        # ray through the pixel centre hits the plane z_cam = 200 at head (x, -y)
        x = (c + 0.5 - 40) / 150.0 * 200.0
        y = -(r + 0.5 - 40) / 150.0 * 200.0
        ref = _bilinear_reference(tex, x / 80.0 + 0.5, y / 80.0 + 0.5)
        np.testing.assert_allclose(img[r, c], ref, atol=2e-4)


def test_supersampled_coverage_and_background():
    # one triangle covering the lower-left half of a square; exact area 0.5 * 30 * 30 px
    tri = np.array([[5.0, 5.0, 100.0], [5.0, 35.0, 100.0], [35.0, 35.0, 100.0]])
    K = np.eye(3)
    K[0, 0] = K[1, 1] = 100.0  # pixel = 100 * x / z, so the camera points are tri * z / 100
    vc = np.concatenate([tri[:, :2] * tri[:, 2:] / 100.0, tri[:, 2:]], 1)
    bg = np.array([0.2, 0.4, 0.6])
    img, mask = render_mesh(vc, np.array([[0, 1, 2]]), K, (40, 40), supersample=4, background=bg,
                            vertex_colors=np.ones((3, 3)), ambient=1.0, diffuse=0.0)
    assert mask.sum() == pytest.approx(450.0, rel=0.01)
    assert 0 < mask[20, 20] < 1  # the diagonal is anti-aliased
    np.testing.assert_allclose(img[mask == 0], np.broadcast_to(bg, img[mask == 0].shape))
    np.testing.assert_allclose(img, mask[..., None] + (1 - mask[..., None]) * bg, atol=1e-6)


def test_render_mesh_rejects_bad_input():
    v, f = icosphere(1, 10.0)
    K = np.diag([50.0, 50.0, 1.0])
    with pytest.raises(ValueError, match="K"):
        render_mesh(v + [0, 0, 50], f, np.eye(4), (8, 8))
    bad = v + [0, 0, 50.0]
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        render_mesh(bad, f, K, (8, 8))
    with pytest.raises(ValueError, match="vertex_colors"):
        render_mesh(v + [0, 0, 50], f, K, (8, 8), vertex_colors=np.ones((3, 3)))


def test_look_at_and_orbit_conventions():
    R, t = look_at([0, 0, 500.0], [0, 0, 0])
    np.testing.assert_allclose(R, frontal_rotation(), atol=1e-6)
    np.testing.assert_allclose(t, [0, 0, 500.0], atol=1e-4)
    for yaw in (0.0, 45.0, 90.0, -30.0):
        R, t = orbit_camera(yaw, distance=400.0, target=(1.0, 2.0, 3.0), pitch_deg=10.0)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(R @ np.array([1.0, 2.0, 3.0]) + t, [0, 0, 400.0], atol=1e-3)
        assert (R @ np.array([0.0, 1.0, 0.0]))[1] < 0  # head up is image up (y down)
    # profile (yaw 90): the camera is on the subject's left (+x), the nose (+z) points image-left
    R, t = orbit_camera(90.0, distance=400.0)
    np.testing.assert_allclose(np.linalg.solve(R, -t), [400.0, 0, 0], atol=1e-3)
    assert (R @ np.array([0, 0, 1.0]))[0] < -0.99


def test_preview_cameras_frame_the_mesh():
    v, f = icosphere(3, 80.0)
    v = v + np.array([10.0, 150.0, -20.0], np.float32)
    cams = preview_cameras(v, (128, 96))
    assert len(cams) == 3
    for K, R, t in cams:
        p = (v @ R.T + t) @ K.T
        xy = p[:, :2] / p[:, 2:]
        assert (xy[:, 0] > 0).all() and (xy[:, 0] < 96).all()
        assert (xy[:, 1] > 0).all() and (xy[:, 1] < 128).all()
    imgs = render_previews(v, f, (64, 64), supersample=1)
    assert len(imgs) == 3 and imgs[0].shape == (64, 64, 3) and imgs[0].dtype == np.float32
    assert (imgs[1][0] == 1.0).all()  # white background at the border
