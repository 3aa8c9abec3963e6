"""Rasteriser tests against analytic references (point-in-triangle, plane depth, ray casting)."""
import numpy as np
import pytest

from digitaltwin_jax.geometry.rasterize import interpolate, rasterize
from digitaltwin_jax.render import grid, icosphere


def _centres(h, w):
    ys, xs = np.mgrid[0:h, 0:w]
    return xs + 0.5, ys + 0.5


def _inside_reference(tri, h, w):
    """Slow, obviously correct: pixel centre strictly on the same side of all three edges; also
    returns the smallest distance of any centre to an edge line (to know the test is unambiguous)."""
    px, py = _centres(h, w)
    signs, dist = [], []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        (ax, ay), (bx, by) = tri[a, :2], tri[b, :2]
        cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        signs.append(np.sign(cross))
        dist.append(np.abs(cross) / np.hypot(bx - ax, by - ay))
    signs = np.stack(signs)
    inside = np.all(signs > 0, axis=0) | np.all(signs < 0, axis=0)
    return inside, np.min(np.stack(dist))


def _edge_distance(tri, h, w):
    px, py = _centres(h, w)
    d = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        (ax, ay), (bx, by) = tri[a, :2], tri[b, :2]
        d.append(np.abs((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / np.hypot(bx - ax, by - ay))
    return np.min(np.stack(d), axis=0)


def _affine_bary_reference(tri, x, y):
    A = np.array([[tri[0, 0], tri[1, 0], tri[2, 0]], [tri[0, 1], tri[1, 1], tri[2, 1]], [1, 1, 1]])
    return np.linalg.solve(A, np.array([x, y, 1.0]))


@pytest.mark.parametrize("perspective", [True, False])
def test_single_triangle_coverage_and_barycentrics(perspective):
    tri = np.array([[3.31, 2.73, 5.0], [27.93, 8.17, 5.0], [11.27, 25.61, 5.0]])
    h, w = 32, 36
    frags = rasterize(tri, np.array([[0, 1, 2]]), h, w, perspective=perspective)
    inside, dmin = _inside_reference(tri, h, w)
    assert dmin > 1e-3  # no centre on an edge: the reference is unambiguous
    np.testing.assert_array_equal(frags.face_id == 0, inside)
    assert (frags.face_id[~inside] == -1).all()
    # area check: the number of covered pixels is close to the triangle area
    e1, e2 = tri[1, :2] - tri[0, :2], tri[2, :2] - tri[0, :2]
    area = 0.5 * abs(e1[0] * e2[1] - e1[1] * e2[0])
    assert abs(inside.sum() - area) < 0.1 * area
    rows, cols = np.nonzero(inside)
    for r, c in zip(rows[::7], cols[::7]):
        ref = _affine_bary_reference(tri, c + 0.5, r + 0.5)
        np.testing.assert_allclose(frags.bary[r, c], ref, atol=1e-5)
        assert frags.depth[r, c] == pytest.approx(5.0, rel=1e-6)
    assert np.isinf(frags.depth[~inside]).all()
    assert (frags.bary[~inside] == 0).all()


def test_square_two_triangles_exact_coverage_without_cracks():
    # square [4, 20]^2 split along the diagonal y = x, which passes through pixel centres
    pts = np.array([[4, 4, 1], [20, 4, 1], [20, 20, 1], [4, 20, 1]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    frags = rasterize(pts, faces, 24, 24)
    px, py = _centres(24, 24)
    inside = (px > 4) & (px < 20) & (py > 4) & (py < 20)
    np.testing.assert_array_equal(frags.mask, inside)
    assert inside.sum() == 256
    off = inside & (np.abs(px - py) > 1e-9)
    # below the diagonal in the image (y < x) is triangle 0
    np.testing.assert_array_equal(frags.face_id[off], np.where(py[off] < px[off], 0, 1))


def test_jittered_grid_is_watertight():
    rng = np.random.default_rng(0)
    v, f, _ = grid(9, 11, width=50.0, height=40.0)
    v = v.astype(np.float64)
    interior = (np.abs(v[:, 0]) < 24.9) & (np.abs(v[:, 1]) < 19.9)
    v[interior, :2] += rng.uniform(-1.5, 1.5, (interior.sum(), 2))
    pts = np.stack([v[:, 0] + 30.0, v[:, 1] + 25.0, np.full(len(v), 3.0)], 1)
    frags = rasterize(pts, f, 50, 60)
    px, py = _centres(50, 60)
    inside = (px > 5) & (px < 55) & (py > 5) & (py < 45)
    np.testing.assert_array_equal(frags.mask, inside)


def test_triangle_partly_outside_the_image():
    tri = np.array([[-40.3, -10.7, 1.0], [30.6, 5.2, 1.0], [2.9, 50.1, 1.0]])
    frags = rasterize(tri, np.array([[0, 1, 2]]), 20, 25)
    inside, dmin = _inside_reference(tri, 20, 25)
    assert dmin > 1e-3
    np.testing.assert_array_equal(frags.mask, inside)


def _plane_depth(tri, x, y):
    """Depth of the screen-space plane through the triangle (orthographic reference)."""
    b = _affine_bary_reference(tri, x, y)
    return b @ tri[:, 2]


def test_depth_ordering_of_overlapping_triangles_is_order_independent():
    near = np.array([[2.2, 3.1, 2.0], [25.7, 6.3, 2.0], [8.4, 27.9, 2.0]])
    far = np.array([[6.1, 1.3, 5.0], [29.4, 20.6, 5.0], [3.3, 22.2, 5.0]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    for order in ([near, far], [far, near]):
        pts = np.concatenate(order)
        frags = rasterize(pts, faces, 30, 32)
        in_near, _ = _inside_reference(near, 30, 32)
        in_far, _ = _inside_reference(far, 30, 32)
        near_id = 0 if order[0] is near else 1
        assert (in_near & in_far).sum() > 50
        assert (frags.face_id[in_near] == near_id).all()
        assert (frags.face_id[in_far & ~in_near] == 1 - near_id).all()
        np.testing.assert_allclose(frags.depth[in_near], 2.0, rtol=1e-6)


def test_interpenetrating_triangles_resolved_per_pixel():
    # two tilted planes crossing each other: the visible one changes along the image
    a = np.array([[1.3, 1.2, 1.0], [30.7, 1.9, 9.0], [15.4, 29.6, 5.0]])
    b = np.array([[0.8, 2.1, 9.0], [31.2, 3.3, 1.0], [14.6, 30.4, 5.5]])
    frags = rasterize(np.concatenate([a, b]), np.array([[0, 1, 2], [3, 4, 5]]), 32, 32, perspective=False)
    in_a, _ = _inside_reference(a, 32, 32)
    in_b, _ = _inside_reference(b, 32, 32)
    both = in_a & in_b
    checked = 0
    for r, c in zip(*np.nonzero(both)):
        za = _plane_depth(a, c + 0.5, r + 0.5)
        zb = _plane_depth(b, c + 0.5, r + 0.5)
        if abs(za - zb) < 1e-3:
            continue
        assert frags.face_id[r, c] == (0 if za < zb else 1)
        assert frags.depth[r, c] == pytest.approx(min(za, zb), abs=1e-4)
        checked += 1
    assert checked > 200
    assert len(np.unique(frags.face_id[both])) == 2


def test_perspective_correct_barycentrics_against_ray_casting():
    # a strongly slanted 3D triangle seen by a pinhole camera
    f_px, cx, cy = 60.0, 32.0, 32.0
    P = np.array([[-30.0, -20.0, 60.0], [35.0, -10.0, 160.0], [-5.0, 30.0, 100.0]])
    K = np.array([[f_px, 0, cx], [0, f_px, cy], [0, 0, 1]])
    uvw = P @ K.T
    pts = np.concatenate([uvw[:, :2] / uvw[:, 2:], P[:, 2:]], 1)
    frags = rasterize(pts, np.array([[0, 1, 2]]), 64, 64, perspective=True)
    n = np.cross(P[1] - P[0], P[2] - P[0])
    rows, cols = np.nonzero(frags.mask)
    assert rows.size > 300
    max_err = max_zerr = 0.0
    for r, c in zip(rows, cols):
        ray = np.linalg.solve(K, np.array([c + 0.5, r + 0.5, 1.0]))  # z = 1
        t = (n @ P[0]) / (n @ ray)
        X = t * ray
        # barycentrics of X in the 3D triangle (least squares, exact since X is on the plane)
        A = np.stack([P[0] - P[2], P[1] - P[2]], 1)
        l01 = np.linalg.lstsq(A, X - P[2], rcond=None)[0]
        ref = np.array([l01[0], l01[1], 1 - l01.sum()])
        if ref.min() < 1e-4:
            continue  # pixels on the border may be included by the tolerance
        max_err = max(max_err, np.abs(frags.bary[r, c] - ref).max())
        max_zerr = max(max_zerr, abs(frags.depth[r, c] - X[2]) / X[2])
    assert max_err < 2e-5
    assert max_zerr < 1e-5
    # and they are far from the affine screen-space barycentrics
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    assert np.abs(frags.bary[r, c] - _affine_bary_reference(pts, c + 0.5, r + 0.5)).max() > 0.02


def test_backface_culling_on_closed_mesh_keeps_visible_surface():
    v, f = icosphere(3, 40.0)
    v = v.astype(np.float64) + [0, 0, 150.0]
    K = np.array([[100.0, 0, 40], [0, 100.0, 40], [0, 0, 1]])
    uvw = v @ K.T
    pts = np.concatenate([uvw[:, :2] / uvw[:, 2:], v[:, 2:]], 1)
    full = rasterize(pts, f, 80, 80)
    culled = rasterize(pts, f, 80, 80, cull_backfaces=True)
    np.testing.assert_array_equal(full.face_id, culled.face_id)
    # with the winding reversed everything visible is a back face: only the far side remains
    rev = rasterize(pts, f[:, ::-1], 80, 80, cull_backfaces=True)
    covered = full.mask & rev.mask
    assert covered.sum() > 0.9 * full.mask.sum()
    assert (rev.depth[covered] > full.depth[covered]).all()
    assert rev.depth[40, 40] - full.depth[40, 40] > 70  # the far side of a 40 mm sphere


def test_interpolate_matches_barycentric_sum():
    tri = np.array([[1.2, 1.7, 2.0], [14.9, 3.1, 4.0], [5.3, 13.8, 3.0]])
    colors = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    frags = rasterize(tri, np.array([[0, 1, 2]]), 16, 16)
    out = interpolate(frags, colors, np.array([[0, 1, 2]]))
    m = frags.mask
    np.testing.assert_allclose(out[m], frags.bary[m], atol=1e-6)
    assert (out[~m] == 0).all()
    scalar = interpolate(frags, np.array([1.0, 2.0, 3.0]), np.array([[0, 1, 2]]))
    assert scalar.shape == (16, 16)


def test_bad_inputs_raise_clear_errors():
    pts = np.zeros((3, 3))
    with pytest.raises(ValueError, match="points_screen"):
        rasterize(np.zeros((3, 2)), [[0, 1, 2]], 4, 4)
    with pytest.raises(ValueError, match="faces"):
        rasterize(pts, [[0, 1, 3]], 4, 4)
    with pytest.raises(TypeError, match="integer"):
        rasterize(pts, np.array([[0.0, 1.0, 2.0]]), 4, 4)
    bad = pts.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        rasterize(bad, [[0, 1, 2]], 4, 4)
    with pytest.raises(ValueError, match="size"):
        rasterize(pts, [[0, 1, 2]], 0, 4)


def test_large_triangle_split_into_blocks():
    # a triangle whose bounding box exceeds one block is cut into row pieces
    tri = np.array([[-0.37, -0.41, 1.0], [2900.3, 10.2, 1.0], [20.1, 2100.7, 1.0]])
    frags = rasterize(tri, np.array([[0, 1, 2]]), 1100, 1500, perspective=False)
    inside, _ = _inside_reference(tri, 1100, 1500)
    # the inside tolerance is relative (1e-5 of an altitude, here ~0.02 px): skip the thin band
    band = _edge_distance(tri, 1100, 1500) < 0.05
    assert band.sum() < 1000
    np.testing.assert_array_equal(frags.mask[~band], inside[~band])
