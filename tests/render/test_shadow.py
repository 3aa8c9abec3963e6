"""Shadow maps against closed forms: a square quad above a plane under a directional light."""
import numpy as np
import pytest

from digitaltwin_jax.render.shadow import light_basis, light_coordinates, shadow_map, shadow_visibility


def _quad(x0, x1, y0, y1, z):
    v = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    return v, f


def _plane(half, z, n=8):
    xs = np.linspace(-half, half, n + 1)
    X, Y = np.meshgrid(xs, xs)
    v = np.stack([X.ravel(), Y.ravel(), np.full(X.size, z)], 1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return v, f


def _scene(light):
    qv, qf = _quad(-20.0, 20.0, -10.0, 10.0, 30.0)
    pv, pf = _plane(100.0, 0.0)
    v = np.concatenate([qv, pv])
    f = np.concatenate([qf, pf + len(qv)])
    return v, f


def _closed_form_shadow(p, light, h=30.0, box=(-20, 20, -10, 10)):
    """Plane point p (z = 0) is shadowed iff the ray toward the light meets the quad at z = h;
    also returns the distance (mm) from the shadow's boundary."""
    s = h / light[2]
    x = p[:, 0] + s * light[0]
    y = p[:, 1] + s * light[1]
    inside = (x > box[0]) & (x < box[1]) & (y > box[2]) & (y < box[3])
    d = np.minimum.reduce([np.abs(x - box[0]), np.abs(x - box[1]), np.abs(y - box[2]), np.abs(y - box[3])])
    dout = np.hypot(np.maximum(np.maximum(box[0] - x, x - box[1]), 0), np.maximum(np.maximum(box[2] - y, y - box[3]), 0))
    return inside, np.where(inside, d, dout)


@pytest.mark.parametrize("light", [(0.0, 0.0, 1.0), (0.5, -0.3, 1.0), (-1.2, 0.4, 1.0)])
@pytest.mark.parametrize("radius", [0.0, 3.0])
def test_quad_shadow_on_plane_matches_closed_form(light, radius):
    light = np.asarray(light) / np.linalg.norm(light)
    v, f = _scene(light)
    sm = shadow_map(v, f, light, size=512)
    texel = 1.0 / sm.scale
    rng = np.random.default_rng(0)
    s = 30.0 / light[2]  # the shadow is the quad shifted by -s * light_xy
    near = rng.uniform([-30, -20], [30, 20], (3000, 2)) - s * light[:2]
    p = np.concatenate([np.concatenate([rng.uniform(-100, 100, (2000, 2)), near]), np.zeros((5000, 1))], 1)
    shadowed, dist = _closed_form_shadow(p, light)
    # keep the plane points whose lookup lands inside the map, away from the penumbra
    q = light_coordinates(sm, p)
    inmap = (q[:, :2] > 1).all(1) & (q[:, :2] < sm.size - 1).all(1)
    clear = inmap & (dist > (radius + 2.0) * texel / light[2])
    assert shadowed[clear].sum() > 200 and (~shadowed[clear]).sum() > 200
    up = np.tile([0.0, 0.0, 1.0], (len(p), 1))
    vis = shadow_visibility(sm, p, bias=0.5, radius=radius, normals=up, slope_bias=1.5)
    np.testing.assert_array_equal(vis[clear & shadowed], 0.0)
    np.testing.assert_array_equal(vis[clear & ~shadowed], 1.0)
    # the occluder itself is lit (no self-shadowing with a small bias)
    qp = np.concatenate([rng.uniform([-19, -9], [19, 9], (200, 2)), np.full((200, 1), 30.0)], 1)
    vq = shadow_visibility(sm, qp, bias=0.5, radius=radius, normals=up[:200], slope_bias=1.5)
    np.testing.assert_array_equal(vq, 1.0)


def test_penumbra_is_monotone_across_the_shadow_edge():
    light = np.array([0.0, 0.0, 1.0])
    v, f = _scene(light)
    sm = shadow_map(v, f, light, size=256)
    xs = np.linspace(10.0, 30.0, 200)  # crosses the edge x = 20 of the shadow
    p = np.stack([xs, np.zeros_like(xs), np.zeros_like(xs)], 1)
    for radius in (0.0, 4.0):
        vis = shadow_visibility(sm, p, bias=0.5, radius=radius)
        assert vis[0] == 0.0 and vis[-1] == 1.0
        if radius == 0.0:  # bilinear PCF: exactly monotone
            assert np.all(np.diff(vis) >= -1e-6)
        assert np.all(vis[xs < 20 - (radius + 1.5) / sm.scale] == 0)
        assert np.all(vis[xs > 20 + (radius + 1.5) / sm.scale] == 1)


def test_light_basis_is_orthonormal_and_points_away_from_light():
    for d in ([0, 0, 1], [0, 1, 0], [0.3, -2.0, 0.1], [-1, 0, 0]):
        B = light_basis(d)
        np.testing.assert_allclose(B @ B.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(B[2], -np.asarray(d) / np.linalg.norm(d), atol=1e-12)
        assert np.linalg.det(B) > 0
    with pytest.raises(ValueError):
        light_basis([0, 0, 0])


def test_points_outside_the_map_are_lit_and_bad_input_raises():
    v, f = _quad(-1, 1, -1, 1, 0)
    sm = shadow_map(v, f, [0, 0, 1], size=16)
    far = np.array([[100.0, 100.0, -50.0]])
    assert shadow_visibility(sm, far)[0] == 1.0
    with pytest.raises(ValueError):
        shadow_map(np.zeros((3, 2)), f, [0, 0, 1])
    with pytest.raises(ValueError):
        shadow_map(np.full((4, 3), np.nan), f, [0, 0, 1])


def test_backface_culling_keeps_the_nearest_depth_of_a_closed_surface():
    from digitaltwin_jax.render.primitives import icosphere

    v, f = icosphere(3, 40.0)
    for d in ([0.2, -0.5, 1.0], [1.0, 0.3, -0.2]):
        a = shadow_map(v, f, d, size=128)
        b = shadow_map(v, f, d, size=128, cull_backfaces=True)
        # nearest depth of a sphere seen along e3: -sqrt(R^2 - r^2) from the centre, closed form
        ys, xs = np.mgrid[0:128, 0:128] + 0.5
        x = xs / a.scale + a.origin[0]
        y = ys / a.scale + a.origin[1]
        r2 = x**2 + y**2
        inner = r2 < (0.9 * 40.0) ** 2
        np.testing.assert_array_equal(a.depth[inner], b.depth[inner])
        np.testing.assert_allclose(a.depth[inner], -np.sqrt(40.0**2 - r2[inner]), atol=0.6)
