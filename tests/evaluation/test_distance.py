"""Exact point-to-mesh distance (digitaltwin_jax/evaluation/distance.py) against a brute-force reference."""
import numpy as np
import pytest

from digitaltwin_jax.evaluation import distance as D


def _triangle_soup(rng, n_tri=300, scale=10.0):
    a = rng.uniform(-scale, scale, size=(n_tri, 3))
    b = a + rng.normal(scale=scale / 5, size=(n_tri, 3))
    c = a + rng.normal(scale=scale / 5, size=(n_tri, 3))
    v = np.concatenate([a, b, c])
    f = np.stack([np.arange(n_tri), np.arange(n_tri) + n_tri, np.arange(n_tri) + 2 * n_tri], 1)
    return v, f


def _check_closest(cp, points, v, f, ref):
    np.testing.assert_allclose(cp.distances, ref, rtol=1e-6, atol=1e-9)
    # the closest point is on the reported triangle, at the reported distance
    bary = cp.barycentrics
    assert (bary >= -1e-9).all() and np.allclose(bary.sum(1), 1.0)
    recon = np.einsum("nk,nkd->nd", bary, v[f[cp.face_ids]])
    np.testing.assert_allclose(recon, cp.points, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(points - cp.points, axis=1), cp.distances, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_triangle_soup_matches_brute_force(seed, em):
    rng = np.random.default_rng(seed)
    v, f = _triangle_soup(rng)
    pts = rng.uniform(-14, 14, size=(400, 3))
    ref = em.brute_force_distance(pts, v, f)
    _check_closest(D.closest_points(pts, v, f), pts, v, f, ref)


@pytest.mark.parametrize("k,cluster", [(1, None), (4, 0.5), (16, 0.5), (16, None), (64, 2.0)])
def test_exact_for_any_search_parameters(k, cluster, em):
    rng = np.random.default_rng(3)
    v, f = em.bumpy_sphere(2, 50.0)
    v = v + rng.normal(scale=0.5, size=v.shape)
    # near the surface, far inside, far outside, and clustered points
    dirs = rng.normal(size=(600, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pts = dirs * rng.choice([5.0, 30.0, 48.0, 52.0, 60.0, 200.0], size=(600, 1))
    pts[:100] = pts[0] + rng.normal(scale=0.3, size=(100, 3))
    ref = em.brute_force_distance(pts, v, f)
    index = D.build_triangle_index(v, f)
    _check_closest(D.closest_points(pts, index, k=k, cluster=cluster), pts, v, f, ref)


def test_very_uneven_triangle_sizes_use_split_proxies(em):
    # one huge triangle far bigger than the rest forces the proxy subdivision path
    rng = np.random.default_rng(5)
    v, f = em.grid(12, 10.0)
    big = np.array([[-200.0, -200.0, 3.0], [200.0, -200.0, 3.0], [0.0, 250.0, 3.0]])
    v = np.concatenate([v, big])
    f = np.concatenate([f, [[v.shape[0] - 3, v.shape[0] - 2, v.shape[0] - 1]]])
    index = D.build_triangle_index(v, f)
    assert index.proxies_per_face_max > 1
    pts = rng.uniform([-150, -150, -20], [150, 150, 20], size=(500, 3))
    pts[:200] = rng.uniform(-6, 6, size=(200, 3))
    _check_closest(D.closest_points(pts, index), pts, v, f, em.brute_force_distance(pts, v, f))


def test_closed_forms_single_triangle():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = np.array([[0, 1, 2]])
    pts = np.array(
        [
            [0.2, 0.3, 2.5],  # above the interior: plane distance
            [0.5, -1.0, 2.0],  # beyond edge AB: distance to (0.5, 0, 0)
            [2.0, -1.0, 0.0],  # beyond vertex B: distance to (1, 0, 0)
            [1.0, 1.0, 0.0],  # beyond the hypotenuse: distance to the line x + y = 1
            [-1.0, -2.0, -1.0],  # beyond vertex A
        ]
    )
    expected = [2.5, np.sqrt(1 + 4), np.sqrt(2), 1 / np.sqrt(2), np.sqrt(6)]
    cp = D.closest_points(pts, v, f)
    np.testing.assert_allclose(cp.distances, expected, rtol=1e-12)
    np.testing.assert_allclose(cp.points[[0, 1, 2, 3, 4]], [[0.2, 0.3, 0], [0.5, 0, 0], [1, 0, 0], [0.5, 0.5, 0], [0, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(cp.barycentrics[0], [0.5, 0.2, 0.3], atol=1e-12)


def test_mesh_against_itself_is_zero(em):
    v, f = em.bumpy_sphere(3, 90.0)
    centroids = v[f].mean(1)
    assert D.point_to_mesh_distance(v, v, f).max() < 1e-9
    assert D.point_to_mesh_distance(centroids, v, f).max() < 1e-9


def test_concentric_sphere_offset_within_tessellation_bound(em):
    """Vertices of a sphere of radius R + delta against an icosphere of radius R: the distance is
    delta up to the tessellation sag (R minus the smallest face-plane distance from the centre)."""
    R, delta = 100.0, 2.0
    v, f = em.icosphere(4, R)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    sag = R - (n * v[f[:, 0]]).sum(1).min()
    assert sag < 0.2  # 5120 faces at R = 100 mm
    outer = v * (R + delta) / R
    d = D.point_to_mesh_distance(outer, v, f)
    assert d.min() >= delta - 1e-9 and d.max() <= delta + sag + 1e-9
    # rigid translation by 3 mm along x: | |p| - R | up to the same sag
    shifted = v + np.array([3.0, 0.0, 0.0])
    d = D.point_to_mesh_distance(shifted, v, f)
    ideal = np.abs(np.linalg.norm(shifted, axis=1) - R)
    assert np.abs(d - ideal).max() <= sag + 1e-9


def test_index_reuse_and_kwargs(em):
    v, f = em.icosphere(2, 10.0)
    pts = np.random.default_rng(0).normal(size=(50, 3)) * 12
    idx = D.build_triangle_index(v, f)
    np.testing.assert_allclose(D.point_to_mesh_distance(pts, idx), em.brute_force_distance(pts, v, f), rtol=1e-9)
    with pytest.raises(TypeError, match="faces must be None"):
        D.closest_points(pts, idx, f)
    with pytest.raises(TypeError, match="faces is required"):
        D.closest_points(pts, v)
    with pytest.raises(ValueError, match="k must be"):
        D.closest_points(pts, idx, k=0)
    with pytest.raises(ValueError, match="cluster"):
        D.closest_points(pts, idx, cluster=-1.0)


def test_closest_points_on_triangles_rowwise(em):
    rng = np.random.default_rng(2)
    v, f = _triangle_soup(rng, 50)
    pts = rng.uniform(-12, 12, size=(50, 3))
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    closest, bary, d2 = D.closest_points_on_triangles(pts, a, b, c)
    ref = np.array([em.brute_force_distance(pts[i : i + 1], v, f[i : i + 1])[0] for i in range(50)])
    np.testing.assert_allclose(np.sqrt(d2), ref, rtol=1e-9)
    np.testing.assert_allclose(bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c, closest, atol=1e-9)


def test_bad_inputs_give_clear_errors(em):
    v, f = em.icosphere(1)
    p = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        D.point_to_mesh_distance(np.zeros((4, 2)), v, f)
    with pytest.raises(ValueError, match="empty"):
        D.point_to_mesh_distance(np.zeros((0, 3)), v, f)
    with pytest.raises(ValueError, match="NaN"):
        D.point_to_mesh_distance(np.array([[0.0, np.nan, 0.0]]), v, f)
    bad_v = v.copy()
    bad_v[3, 1] = np.inf
    with pytest.raises(ValueError, match="mesh vertices contains NaN or inf"):
        D.point_to_mesh_distance(p, bad_v, f)
    with pytest.raises(ValueError, match="out of range"):
        D.point_to_mesh_distance(p, v, f + 1000)
    with pytest.raises(TypeError, match="integer"):
        D.point_to_mesh_distance(p, v, f.astype(float))
    with pytest.raises(ValueError, match=r"shape \(F, 3\)"):
        D.point_to_mesh_distance(p, v, f[:, :2])
    with pytest.raises(TypeError, match="numeric"):
        D.point_to_mesh_distance(np.array([["a", "b", "c"]]), v, f)
    # degenerate faces are measured, not refused (tests/evaluation/test_degenerate_meshes.py);
    # the clean-up utilities stay: repeated corner, collinear corners
    deg = np.concatenate([f, f[:1, [0, 0, 1]]])  # lies on an edge of the mesh: changes nothing
    np.testing.assert_allclose(D.point_to_mesh_distance(p, v, deg), D.point_to_mesh_distance(p, v, f))
    v2 = np.concatenate([v, [[0.0, 0, 0], [1, 1, 1], [2, 2, 2]]])
    col = np.concatenate([f, [[len(v), len(v) + 1, len(v) + 2]]])
    assert D.degenerate_faces(v2, col).sum() == 1
    cleaned = D.remove_degenerate_faces(v2, col)
    np.testing.assert_array_equal(cleaned, f)
    # the stray segment (0,0,0)-(2,2,2) passes through the query point (0,0,0): distance 0
    np.testing.assert_allclose(D.point_to_mesh_distance(p, v2, col), 0.0, atol=1e-15)
    assert (D.point_to_mesh_distance(p, v2, cleaned) > 0.5).all()


def test_face_normals_unit_and_outward(em):
    v, f = em.icosphere(2)
    n = D.face_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    assert ((n * v[f].mean(1)).sum(1) > 0).all()


def test_thin_triangles_match_brute_force(em):
    # slivers (height / length ~ 1e-4) are valid, not degenerate, and must stay exact
    rng = np.random.default_rng(11)
    n = 200
    a = rng.uniform(-10, 10, size=(n, 3))
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    perp = np.cross(d, rng.normal(size=(n, 3)))
    perp /= np.linalg.norm(perp, axis=1, keepdims=True)
    b = a + 5.0 * d
    c = a + 2.0 * d + 5e-4 * perp
    v = np.concatenate([a, b, c])
    f = np.stack([np.arange(n), np.arange(n) + n, np.arange(n) + 2 * n], 1)
    assert not D.degenerate_faces(v, f).any()
    pts = rng.uniform(-12, 12, size=(300, 3))
    _check_closest(D.closest_points(pts, v, f), pts, v, f, em.brute_force_distance(pts, v, f))
