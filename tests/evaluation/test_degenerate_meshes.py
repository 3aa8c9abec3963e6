"""Degenerate and odd meshes are measured, not refused (issue 20).

Reference: a brute-force loop over triangles written here independently of the package, in
extended precision (``np.longdouble``): for a proper triangle the textbook definition -- the plane
projection if it falls inside the triangle, else the nearest of the three edge segments (not
Ericson's barycentric formula, whose rounding error grows as eps / aspect^2 on slivers); a zero-area
triangle explicitly as its longest edge (collinear corners) or its point (coincident corners),
libigl's convention.  The package and this reference share no code.

Zero area means ``2 area <= sqrt(eps) * longest_edge^2`` (the package's documented rule); the test
meshes keep their slivers well above it (aspect >= 1e-6) or exactly collinear, so the convention is
not what is being compared except in the explicit threshold test.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitaltwin_jax.evaluation import distance as D
from digitaltwin_jax.evaluation import distance_jax as DJ
from digitaltwin_jax.evaluation import metrics as M

_REF_DEGENERATE = 2.0**-26  # sqrt(float64 eps): the documented zero-area rule
LD = np.longdouble
_SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# independent reference
# --------------------------------------------------------------------------------------------------
def _ref_segment(p, a, b):
    """Closest points on segments a-b (rows broadcast against p); a zero-length segment is a point."""
    ab = b - a
    den = (ab * ab).sum(-1)
    t = np.where(den > 0, ((p - a) * ab).sum(-1) / np.where(den > 0, den, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return a + t[..., None] * ab


def _ref_proper(p, a, b, c):
    """Closest point on proper triangles (a, b, c) (F, 3) to one point p (3,): (F, 3) longdouble."""
    n = np.cross(b - a, c - a)
    n = n / np.sqrt((n * n).sum(1))[:, None]
    h = ((p - a) * n).sum(1)
    q = p - h[:, None] * n  # plane projection
    inside = ((np.cross(b - a, q - a) * n).sum(1) >= 0) & ((np.cross(c - b, q - b) * n).sum(1) >= 0) & (
        (np.cross(a - c, q - c) * n).sum(1) >= 0
    )
    edges = np.stack([_ref_segment(p, a, b), _ref_segment(p, b, c), _ref_segment(p, c, a)])  # (3, F, 3)
    k = ((p - edges) ** 2).sum(-1).argmin(0)
    return np.where(inside[:, None], q, edges[k, np.arange(a.shape[0])])


def _ref_closest_on_triangles(p, a, b, c):
    """Closest point on each triangle to p (3,), zero-area triangles as longest edge / point."""
    p, a, b, c = (np.asarray(x, dtype=LD) for x in (p, a, b, c))
    e = np.stack([((b - a) ** 2).sum(1), ((c - a) ** 2).sum(1), ((c - b) ** 2).sum(1)], 1)
    longest = e.max(1)
    area2 = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    zero = area2 <= _REF_DEGENERATE * longest
    out = np.empty_like(a)
    if (~zero).any():
        out[~zero] = _ref_proper(p, a[~zero], b[~zero], c[~zero])
    if zero.any():
        ends = {0: (a, b), 1: (a, c), 2: (b, c)}
        k = e[zero].argmax(1)
        s0 = np.choose(k[:, None], [ends[j][0][zero] for j in range(3)])
        s1 = np.choose(k[:, None], [ends[j][1][zero] for j in range(3)])
        out[zero] = _ref_segment(p, s0, s1)  # a point when s0 == s1
    return out


def ref_distance(points, v, f):
    """Brute force: min over all triangles, one point at a time.  (N,) float64."""
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return np.array([np.sqrt(((p - _ref_closest_on_triangles(p, a, b, c)) ** 2).sum(1).min()) for p in points], dtype=np.float64)


def _check(cp, points, v, f, ref, tol=1e-9):
    scale = max(1.0, float(np.abs(v).max()))
    np.testing.assert_allclose(cp.distances, ref, rtol=1e-9, atol=tol * scale)
    bary = cp.barycentrics
    assert np.isfinite(bary).all() and (bary >= -1e-12).all()
    np.testing.assert_allclose(bary.sum(1), 1.0, atol=1e-12)
    recon = np.einsum("nk,nkd->nd", bary, v[f[cp.face_ids]])
    np.testing.assert_allclose(recon, cp.points, atol=tol * scale)
    np.testing.assert_allclose(np.linalg.norm(points - cp.points, axis=1), cp.distances, rtol=1e-9, atol=tol * scale)


# --------------------------------------------------------------------------------------------------
# the reference itself
# --------------------------------------------------------------------------------------------------
def test_reference_agrees_with_projection_brute_force_and_closed_forms(em):
    rng = np.random.default_rng(0)
    v, f = em.bumpy_sphere(1, 10.0)
    pts = rng.normal(size=(60, 3)) * 12
    np.testing.assert_allclose(ref_distance(pts, v, f), em.brute_force_distance(pts, v, f), rtol=1e-10)
    # closed forms for the degenerate cases: segment (0,0,0)-(4,0,0) given as a collinear triangle
    seg = np.array([[0.0, 0, 0], [1, 0, 0], [4, 0, 0]])
    p = np.array([[2.0, 3, 4], [-3.0, 4, 0], [7.0, 0, 0]])
    np.testing.assert_allclose(ref_distance(p, seg, np.array([[0, 2, 1]])), [5.0, 5.0, 3.0])
    pt = np.array([[1.0, 1, 1], [1.0, 1, 1], [1.0, 1, 1]])
    np.testing.assert_allclose(ref_distance(p, pt, np.array([[0, 1, 2]])), np.linalg.norm(p - 1.0, axis=1))


# --------------------------------------------------------------------------------------------------
# odd meshes
# --------------------------------------------------------------------------------------------------
def _odd_mesh(em, seed):
    """A bumpy sphere with every oddity a raw scan has, plus stray degenerate faces off the surface."""
    rng = np.random.default_rng(seed)
    v, f = em.bumpy_sphere(1, 20.0, seed=seed)
    v = list(v)
    f = [tuple(t) for t in f]
    nv0 = len(v)

    def add(x):
        v.append(np.asarray(x, dtype=np.float64))
        return len(v) - 1

    # zero-area faces on the surface: an edge midpoint as a third corner, repeated indices
    for i, j, _ in f[:6]:
        m = add(0.5 * (v[i] + v[j]))
        f.append((i, m, j))
        f.append((i, i, j))
    # duplicate vertices: some faces re-pointed to exact copies
    for t in range(8, 14):
        i, j, k = f[t]
        f[t] = (add(v[i].copy()), j, k)
    # unreferenced vertices
    for _ in range(5):
        add(rng.normal(size=3) * 30)
    # non-manifold edges: two extra fins on one edge
    i, j, _ = f[20]
    for _ in range(2):
        f.append((i, j, add(0.5 * (v[i] + v[j]) + rng.normal(size=3) * 4)))
    # stray zero-area faces away from the surface: collinear (corner order varied), coincident
    for _ in range(4):
        a = rng.normal(size=3) * 30
        d = rng.normal(size=3) * 5
        ids = [add(a), add(a + 0.3 * d), add(a + d)]
        f.append(tuple(ids[q] for q in rng.permutation(3)))
        pnt = rng.normal(size=3) * 30
        f.append((add(pnt), add(pnt.copy()), add(pnt.copy())))
        f.append((add(rng.normal(size=3) * 30),) * 3)
    # slivers (one proper, one below the 1e-12 rule) and obtuse triangles, off the surface
    for h in (1e-5, 1e-14):
        a = rng.normal(size=3) * 30
        d = rng.normal(size=3) * 6
        perp = np.cross(d, rng.normal(size=3))
        f.append((add(a), add(a + d), add(a + 0.4 * d + h * perp / np.linalg.norm(perp))))
    for _ in range(3):
        a = rng.normal(size=3) * 30
        d = rng.normal(size=3) * 6
        perp = np.cross(d, rng.normal(size=3))
        f.append((add(a), add(a + d), add(a + 0.5 * d + 0.05 * perp / np.linalg.norm(perp) * np.linalg.norm(d))))
    v = np.array(v)
    f = np.array(f, dtype=np.int64)
    assert v.shape[0] > nv0
    return v, f


@pytest.mark.parametrize("seed", [0, 1])
def test_odd_mesh_matches_reference(em, seed):
    rng = np.random.default_rng(100 + seed)
    v, f = _odd_mesh(em, seed)
    deg = D.degenerate_faces(v, f)
    assert deg.sum() >= 12 + 4 * 3 + 1  # the surface and stray zero-area faces, the thinnest sliver
    used = np.unique(f)
    # points everywhere, near and exactly on the stray degenerate faces, and on the surface
    pts = np.concatenate([
        rng.normal(size=(150, 3)) * 30,
        v[f[deg][:, 0]] + rng.normal(size=(int(deg.sum()), 3)) * 0.5,
        v[f[deg][:, 1]],
        v[used[:20]],
    ])
    ref = ref_distance(pts, v, f)
    for k, cluster in [(24, 0.5), (1, None), (4, 2.0)]:
        _check(D.closest_points(pts, v, f, k=k, cluster=cluster), pts, v, f, ref)
    # point_to_mesh_distance and a reused index agree
    idx = D.build_triangle_index(v, f)
    np.testing.assert_array_equal(D.point_to_mesh_distance(pts, idx), D.closest_points(pts, idx).distances)


def test_stray_degenerate_faces_are_part_of_the_surface():
    # a triangle plus an isolated segment and an isolated point: both count, as in libigl
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [6, 0, 0], [7, 0, 0], [0, 0, 9]], float)
    f = np.array([[0, 1, 2], [3, 5, 4], [6, 6, 6]])
    p = np.array([[5.5, 2.0, 0.0], [6.5, 0, 0], [0, 0, 10], [8, 0, 0]])
    cp = D.closest_points(p, v, f)
    np.testing.assert_allclose(cp.distances, [2.0, 0.0, 1.0, 1.0], atol=1e-15)
    np.testing.assert_array_equal(cp.face_ids, [1, 1, 2, 1])
    np.testing.assert_allclose(cp.points, [[5.5, 0, 0], [6.5, 0, 0], [0, 0, 9], [7, 0, 0]], atol=1e-15)
    # barycentrics refer to the face's own corners (3, 5, 4): 5.5 = 0.5*v3 + 0.5*v5
    np.testing.assert_allclose(cp.barycentrics[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(cp.barycentrics[3], [0.0, 1.0, 0.0])


def test_zero_area_rule_and_sliver_accuracy():
    # aspect 1e-9 (below sqrt(eps)): measured as its longest edge; aspect 1e-7: a proper triangle,
    # measured in its face region to ~eps/aspect (Ericson's formula was off by ~1e-2 here)
    a, b = np.array([0.0, 0.0, 0.0]), np.array([10.0, 0.0, 0.0])
    for aspect, expect_degenerate in [(1e-9, True), (1e-7, False)]:
        c = np.array([4.0, 10.0 * aspect, 0.0])  # 2 area = 100 aspect, longest edge 10
        v, f = np.stack([a, b, c]), np.array([[0, 1, 2]])
        assert D.degenerate_faces(v, f)[0] == expect_degenerate
        p = np.array([[4.0, 0.5 * 10.0 * aspect, 3.0], [4.0, 0.0, -2.0], [12.0, 0.0, 0.0]])
        height = 0.5 * 10.0 * aspect if expect_degenerate else 0.0  # the segment misses the sliver's width
        exact = np.array([np.hypot(3.0, height), 2.0, 2.0])
        np.testing.assert_allclose(D.closest_points(p, v, f).distances, exact, rtol=1e-12)
        with jax.enable_x64(True):
            d2 = jax.vmap(DJ.point_triangle_squared_distance, in_axes=(0, None, None, None))(p, a, b, c)
        np.testing.assert_allclose(np.sqrt(np.asarray(d2)), exact, rtol=1e-12)


def test_mesh_of_only_point_faces():
    v = np.array([[0.0, 0, 0], [3, 4, 0]])
    f = np.array([[0, 0, 0], [1, 1, 1]])
    p = np.array([[0.0, 0, 1], [3, 4, 2], [1.5, 2, 0]])
    cp = D.closest_points(p, v, f)
    np.testing.assert_allclose(cp.distances, [1.0, 2.0, 2.5])
    assert np.isfinite(cp.barycentrics).all()


# --------------------------------------------------------------------------------------------------
# property-based: single triangles of every kind, numpy and JAX kernels
# --------------------------------------------------------------------------------------------------
_coord = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_subnormal=False)
_vec = st.tuples(_coord, _coord, _coord).map(np.array)
_frac = st.floats(min_value=-0.5, max_value=1.5, allow_nan=False)


@st.composite
def _triangle(draw):
    """(a, b, c) of one kind: generic, obtuse, sliver, collinear (any order), coincident pair or all."""
    kind = draw(st.sampled_from(["generic", "obtuse", "sliver", "collinear", "pair", "point"]))
    a, b = draw(_vec), draw(_vec)
    if kind == "generic":
        c = draw(_vec)
    elif kind == "obtuse":
        c = a + 0.5 * (b - a) + 0.05 * np.cross(b - a, draw(_vec)) / 10.0
    elif kind == "sliver":  # aspect 2 area / longest^2 in [1e-6 / 4, 1e-3]
        perp = np.cross(b - a, draw(_vec))
        norm = np.linalg.norm(perp)
        off = perp / norm * np.linalg.norm(b - a) * draw(st.floats(1e-6, 1e-3)) if norm > 1e-9 else 0.0
        c = a + draw(_frac) * (b - a) + off
    elif kind == "collinear":
        c = a + draw(_frac) * (b - a)
    elif kind == "pair":
        c = a.copy()
    else:
        b, c = a.copy(), a.copy()
    tri = [a, b, c]
    order = draw(st.permutations([0, 1, 2]))
    return [tri[i] for i in order]


@_SETTINGS
@given(tri=_triangle(), pts=st.lists(_vec, min_size=1, max_size=8))
def test_numpy_kernel_any_triangle(tri, pts):
    a, b, c = tri
    p = np.array(pts)
    m = p.shape[0]
    A, B, C = (np.repeat(x[None], m, 0) for x in (a, b, c))
    closest, bary, d2 = D.closest_points_on_triangles(p, A, B, C)
    ref = _ref_closest_on_triangles_rowwise(p, A, B, C).astype(np.float64)
    ref_d = np.linalg.norm(p - ref, axis=1)
    np.testing.assert_allclose(np.sqrt(d2), ref_d, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(p - closest, axis=1), ref_d, rtol=1e-9, atol=1e-9)
    assert (bary >= -1e-12).all()
    np.testing.assert_allclose(bary[:, :1] * A + bary[:, 1:2] * B + bary[:, 2:] * C, closest, atol=1e-9)
    # the accelerated search on the one-triangle mesh gives the same
    v = np.stack([a, b, c])
    cp = D.closest_points(p, v, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(cp.distances, ref_d, rtol=1e-9, atol=1e-9)


def _ref_closest_on_triangles_rowwise(p, a, b, c):
    return np.stack([_ref_closest_on_triangles(p[i], a[i : i + 1], b[i : i + 1], c[i : i + 1])[0] for i in range(p.shape[0])])


@pytest.fixture(scope="module")
def jax_kernel():
    with jax.enable_x64(True):
        fn = jax.jit(DJ.closest_point_on_triangle)
        grad = jax.jit(jax.grad(DJ.point_triangle_squared_distance, argnums=(0, 1, 2, 3)))
    return fn, grad


@_SETTINGS
@given(tri=_triangle(), p=_vec)
def test_jax_kernel_any_triangle(jax_kernel, tri, p):
    fn, grad = jax_kernel
    a, b, c = tri
    ref = _ref_closest_on_triangles(p, a[None], b[None], c[None])[0].astype(np.float64)
    with jax.enable_x64(True):
        args = [jnp.asarray(x, dtype=jnp.float64) for x in (p, a, b, c)]
        closest, bary = fn(*args)
        g = grad(*args)
    closest, bary = np.asarray(closest), np.asarray(bary)
    np.testing.assert_allclose(np.linalg.norm(p - closest), np.linalg.norm(p - ref), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bary @ np.stack([a, b, c]), closest, atol=1e-9)
    assert (bary >= -1e-12).all()
    # gradients are finite everywhere; with respect to p it is 2 (p - closest)
    assert all(np.isfinite(np.asarray(x)).all() for x in g)
    np.testing.assert_allclose(np.asarray(g[0]), 2 * (p - closest), rtol=1e-7, atol=1e-7)


def test_jax_dense_and_given_faces_on_odd_mesh(em):
    v, f = _odd_mesh(em, 3)
    rng = np.random.default_rng(7)
    pts = rng.normal(size=(40, 3)) * 30
    ref = ref_distance(pts, v, f)
    cp = D.closest_points(pts, v, f)
    with jax.enable_x64(True):
        dense = np.sqrt(np.asarray(DJ.point_mesh_squared_distance_dense(pts, v, f)))
        given_faces = np.asarray(DJ.point_mesh_distance_given_faces(pts, v, f, cp.face_ids))
    np.testing.assert_allclose(dense, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(given_faces, ref, rtol=1e-9, atol=1e-9)


def test_jax_float32_collinear_triangle_is_a_segment():
    a, b, c = jnp.array([0.0, 0, 0]), jnp.array([1.0, 0, 0]), jnp.array([4.0, 0, 0])
    d2 = DJ.point_triangle_squared_distance(jnp.array([2.0, 3.0, 4.0]), a, c, b)
    assert d2.dtype == jnp.float32
    np.testing.assert_allclose(float(d2), 25.0, rtol=1e-6)
    g = jax.grad(DJ.point_triangle_squared_distance, argnums=(0, 1, 2, 3))(jnp.array([2.0, 3.0, 4.0]), a, c, b)
    assert all(np.isfinite(np.asarray(x)).all() for x in g)


# --------------------------------------------------------------------------------------------------
# the metrics on scans with degenerate faces
# --------------------------------------------------------------------------------------------------
def _cylinder_patch(n=24, radius=60.0, size=120.0):
    """Grid bent around the y axis: every grid row along y is a straight line of vertices."""
    xs = np.linspace(-size / 2, size / 2, n + 1)
    x, y = np.meshgrid(xs, xs, indexing="xy")  # vertex (row r, col c) = r * (n + 1) + c, y varies with r
    ang = x.ravel() / radius
    v = np.stack([radius * np.sin(ang), y.ravel(), radius * np.cos(ang)], 1)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a = (i * (n + 1) + j).ravel()
    b, c, d = a + 1, a + n + 1, a + n + 2
    return v, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int64)


def test_armse_on_scan_with_degenerate_faces_equals_clean_scan():
    n = 24
    gv, gf = _cylinder_patch(n)
    # zero-area faces lying on the surface, using existing vertices only (same query points):
    # three consecutive vertices of a straight line (column direction) and repeated corners
    col = np.arange(0, n - 1) * (n + 1) + 5
    extra = np.concatenate([np.stack([col, col + 2 * (n + 1), col + (n + 1)], 1), gf[:30][:, [0, 0, 1]]])
    gf_dirty = np.concatenate([gf, extra])
    assert D.degenerate_faces(gv, gf_dirty).sum() == extra.shape[0]
    rng = np.random.default_rng(0)
    pv = gv * 1.01 + rng.normal(scale=0.3, size=gv.shape)
    center = np.array([0.0, 0.0, 60.0])
    dirty = M.armse_curve(pv, gf, gv, gf_dirty, center=center, radii=(40.0, 70.0))
    clean = M.armse_curve(pv, gf, gv, gf, center=center, radii=(40.0, 70.0))
    for r_dirty, r_clean in zip(dirty, clean):
        assert np.isfinite(r_dirty.armse)
        np.testing.assert_allclose(r_dirty.armse, r_clean.armse, rtol=1e-12)
    # and against the reference: the prediction -> scan RMSE at the large radius
    faces70, _ = M.crop_mesh(gv, gf_dirty, center, 70.0)
    used = ~np.isnan(dirty[1].pred_errors)
    np.testing.assert_allclose(dirty[1].pred_errors[used], ref_distance(pv[used], gv, faces70), rtol=1e-9, atol=1e-9)


def test_full_protocol_with_degenerate_scan_faces():
    # landmark alignment + point-to-plane ICP + ARMSE on a scan with zero-area faces on its surface:
    # runs, and matches the clean scan (zero-area faces carry a zero normal in ICP: those pairs drop)
    n = 24
    gv, gf = _cylinder_patch(n)
    col = np.arange(0, n - 1) * (n + 1) + 5
    gf_dirty = np.concatenate([gf, np.stack([col, col + 2 * (n + 1), col + (n + 1)], 1), gf[:30][:, [0, 0, 1]]])
    lm = np.array([2 * (n + 1) + 3, 2 * (n + 1) + 21, 12 * (n + 1) + 12, 20 * (n + 1) + 4,
                   20 * (n + 1) + 20, 8 * (n + 1) + 8, 16 * (n + 1) + 16])
    rng = np.random.default_rng(1)
    pv = gv + rng.normal(scale=0.2, size=gv.shape)
    kw = dict(pred_landmarks=pv[lm], gt_landmarks=gv[lm], gt_center=np.array([0.0, 0.0, 60.0]))
    dirty = M.evaluate_reconstruction(pv, gf, gv, gf_dirty, **kw)
    clean = M.evaluate_reconstruction(pv, gf, gv, gf, **kw)
    for a, b in zip(dirty.armse, clean.armse):
        assert np.isfinite(a.armse) and a.armse > 0.1
        np.testing.assert_allclose(a.armse, b.armse, rtol=1e-3)


def test_jax_kernel_gradients_finite_for_vanishing_edges():
    """Regression (found by hypothesis in CI): an edge of length 1.4e-147 squares to 2e-294, whose
    square underflows, and the unused branch's gradient -num / x^2 was 0 / 0 = NaN."""
    from digitaltwin_jax.evaluation.distance_jax import point_triangle_squared_distance

    grad = jax.grad(point_triangle_squared_distance, argnums=(0, 1, 2, 3))
    with jax.enable_x64(True):
        for c3 in (1.43277622e-147, 1e-160, 1e-300):
            for p in ([0.0, 0.0, 0.0], [0.3, -0.2, 0.5]):
                args = [jnp.asarray(x, jnp.float64) for x in (p, [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, c3])]
                g = grad(*args)
                assert all(np.all(np.isfinite(np.asarray(x))) for x in g), (c3, p, g)
                # value: distance to the segment from the origin to (0, 0, 1)
                q = np.asarray(p)
                ref = q[0] ** 2 + q[1] ** 2 + (min(max(q[2], 0.0), 1.0) - q[2]) ** 2
                assert float(point_triangle_squared_distance(*args)) == pytest.approx(ref, abs=1e-12)
                np.testing.assert_allclose(np.asarray(g[0]), 2 * (q - np.array([0, 0, min(max(q[2], 0), 1)])), atol=1e-12)
        # the whole triangle shrunk to 1e-160: a point; gradient finite
        tri = [jnp.asarray(x, jnp.float64) for x in ([1e-160, 0, 0], [0, 1e-160, 0], [0, 0, 1e-160])]
        g = grad(jnp.asarray([1.0, 2.0, 3.0], jnp.float64), *tri)
        assert all(np.all(np.isfinite(np.asarray(x))) for x in g)
