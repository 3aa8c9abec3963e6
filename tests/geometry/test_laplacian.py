"""Cotangent Laplacian, weights and mass matrices against independent references and closed forms."""
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from jax.test_util import check_grads

from digitaltwin_jax.geometry import (
    cotangent_edge_weights,
    cotangent_laplacian,
    cotangent_weights,
    laplacian_apply,
    mass_matrix,
    vertex_areas,
)

sys.path.insert(0, str(Path(__file__).parent))
from geometry_meshes import bumpy_sphere, grid, icosphere  # noqa: E402


def reference_cotmatrix(v, f):
    """Slow, obviously correct numpy/scipy cotmatrix: angles by arccos, one triangle at a time."""
    n = len(v)
    rows, cols, vals = [], [], []
    for tri in f:
        for k in range(3):
            i, j, o = tri[(k + 1) % 3], tri[(k + 2) % 3], tri[k]
            a, b = v[i] - v[o], v[j] - v[o]
            ang = np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))
            w = 0.5 / np.tan(ang)
            rows += [i, j, i, j]
            cols += [j, i, i, j]
            vals += [w, w, -w, -w]
    return sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).toarray()


def reference_areas(v, f, kind):
    out = np.zeros(len(v))
    for tri in f:
        p = v[tri]
        area = 0.5 * np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0]))
        if kind == "barycentric":
            out[tri] += area / 3
            continue
        ang = []
        for k in range(3):
            a, b = p[(k + 1) % 3] - p[k], p[(k + 2) % 3] - p[k]
            ang.append(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
        if max(ang) > np.pi / 2:
            for k in range(3):
                out[tri[k]] += area / 2 if ang[k] > np.pi / 2 else area / 4
        else:
            for k in range(3):  # Meyer et al.: 1/8 (|e_ij|^2 cot(angle at l) + |e_il|^2 cot(angle at j))
                j, l = (k + 1) % 3, (k + 2) % 3
                out[tri[k]] += (np.sum((p[j] - p[k]) ** 2) / np.tan(ang[l]) + np.sum((p[l] - p[k]) ** 2) / np.tan(ang[j])) / 8
    return out


@pytest.fixture(scope="module")
def mesh():
    v, f = bumpy_sphere(2, seed=1, amplitude=0.3)
    rng = np.random.default_rng(0)
    v = v + 0.03 * rng.normal(size=v.shape)  # irregular, with obtuse triangles
    return v, f


def test_matches_reference_cotmatrix(mesh):
    v, f = mesh
    ref = reference_cotmatrix(v, f)
    dense = jax.jit(lambda p: cotangent_laplacian(p, f).todense())
    with jax.enable_x64(True):
        lap = np.asarray(dense(jnp.asarray(v)))
    assert np.abs(lap - ref).max() < 1e-10 * np.abs(ref).max()
    # float32 path too
    lap32 = np.asarray(dense(v.astype(np.float32)))
    assert np.abs(lap32 - ref).max() < 1e-4 * np.abs(ref).max()
    # the mesh really has obtuse angles, i.e. negative half-cotangents
    assert (np.asarray(cotangent_weights(v.astype(np.float32), f)) < 0).any()


def test_properties_symmetric_nsd_zero_rows(mesh):
    v, f = mesh
    lap = np.asarray(jax.jit(lambda p: cotangent_laplacian(p, f).todense())(v.astype(np.float32)), np.float64)
    assert np.allclose(lap, lap.T, atol=1e-5)
    assert np.abs(lap.sum(1)).max() < 1e-4
    assert np.linalg.eigvalsh(lap).max() < 1e-4  # negative semi-definite


def test_edge_weights_and_apply(mesh):
    v, f = mesh
    ref = reference_cotmatrix(v, f)
    edges, w = cotangent_edge_weights(v.astype(np.float32), f)
    assert edges.shape[0] == (3 * len(f)) // 2
    np.testing.assert_allclose(np.asarray(w), ref[edges[:, 0], edges[:, 1]], atol=1e-5)
    x = np.random.default_rng(1).normal(size=(len(v), 2))
    np.testing.assert_allclose(np.asarray(laplacian_apply(v.astype(np.float32), f, x.astype(np.float32))), ref @ x, atol=1e-4)
    np.testing.assert_allclose(np.asarray(laplacian_apply(v.astype(np.float32), f, x[:, 0].astype(np.float32))), ref @ x[:, 0], atol=1e-4)


def test_regular_grid_closed_form():
    # right-angled grid triangles: axis edges get 1/2 (cot 45 + cot 45) = 1, diagonals cot 90 = 0,
    # so L is the 5-point stencil (-4 on interior diagonals)
    nx = ny = 6
    v, f = grid(nx, ny, 3.0, 3.0)
    lap = np.asarray(jax.jit(lambda p: cotangent_laplacian(p, f).todense())(v.astype(np.float32)))
    idx = np.arange(len(v)).reshape(nx + 1, ny + 1)
    i = idx[3, 3]
    row = lap[i]
    assert row[i] == pytest.approx(-4.0, abs=1e-5)
    for j in (idx[2, 3], idx[4, 3], idx[3, 2], idx[3, 4]):
        assert row[j] == pytest.approx(1.0, abs=1e-5)
    assert row[idx[2, 2]] == pytest.approx(0.0, abs=1e-5) and row[idx[4, 4]] == pytest.approx(0.0, abs=1e-5)
    assert np.count_nonzero(np.abs(row) > 1e-6) == 5


def test_sphere_spectrum():
    # -L u = lambda M u on the unit sphere: l (l + 1) with multiplicity 2 l + 1
    v, f = icosphere(3)
    with jax.enable_x64(True):
        lap = np.asarray(jax.jit(lambda p: cotangent_laplacian(p, f).todense())(jnp.asarray(v)))
        m = np.asarray(jax.jit(lambda p: vertex_areas(p, f, kind="voronoi"))(jnp.asarray(v)))
    assert m.sum() == pytest.approx(4 * np.pi, rel=0.01)
    ev = sla.eigh(-lap, np.diag(m), eigvals_only=True, subset_by_index=[0, 15])
    expect = np.array([0] + [2] * 3 + [6] * 5 + [12] * 7, float)
    assert abs(ev[0]) < 1e-8
    np.testing.assert_allclose(ev[1:], expect[1:], rtol=0.02)


@pytest.mark.parametrize("kind", ["voronoi", "barycentric"])
def test_mass_matches_reference(mesh, kind):
    v, f = mesh
    ref = reference_areas(v, f, kind)
    got = np.asarray(vertex_areas(v.astype(np.float32), f, kind=kind))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-7)
    mm = jax.jit(lambda p: mass_matrix(p, f, kind=kind).todense())(v.astype(np.float32))
    np.testing.assert_allclose(np.diag(np.asarray(mm)), got, rtol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        vertex_areas(v, f, kind="lumped")


def test_gradients_finite_differences():
    v, f = bumpy_sphere(0, seed=2)
    with jax.enable_x64(True):
        vj = jnp.asarray(v)
        x = jnp.asarray(np.random.default_rng(3).normal(size=(len(v), 2)))

        def all_outputs(p, y):
            return (cotangent_laplacian(p, f).data, laplacian_apply(p, f, y), vertex_areas(p, f, kind="voronoi"))

        check_grads(jax.jit(all_outputs), (vj, x), order=1, modes=("rev",))


def test_jit_and_vmap(mesh):
    v, f = mesh
    v = v.astype(np.float32)
    dense = reference_cotmatrix(v.astype(np.float64), f)
    jitted = jax.jit(cotangent_laplacian)(v, f)
    np.testing.assert_allclose(np.asarray(jax.jit(lambda m: m.todense())(jitted)), dense, atol=1e-4)
    batch = np.stack([v, 1.5 * v, v + 1.0])
    w = jax.vmap(lambda p: cotangent_weights(p, f))(batch)
    np.testing.assert_allclose(np.asarray(w[1]), np.asarray(w[0]), atol=1e-5)  # scale invariant
    x = np.ones((len(v),), np.float32)
    y = jax.jit(jax.vmap(lambda p: laplacian_apply(p, f, x)))(batch)
    assert np.abs(np.asarray(y)).max() < 1e-4  # constants are in the kernel


def test_degenerate_triangles_finite():
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [1, 1, 0], [1, 1, 0]], np.float32)
    f = np.array([[0, 1, 2],  # collinear: zero area
                  [0, 1, 3],
                  [1, 2, 3],
                  [0, 3, 4]],  # repeated vertex: zero-length edge
                 np.int32)
    lap = jax.jit(cotangent_laplacian)(v, f)
    assert np.isfinite(np.asarray(lap.data)).all()
    w = np.asarray(jax.jit(cotangent_weights)(v, f))
    assert np.isfinite(w).all() and np.abs(w).max() <= 0.5 / (2 * 1e-6) * 1.0001
    g = jax.jit(jax.grad(lambda p: jnp.sum(cotangent_laplacian(p, f).data ** 2) * 1e-12))(jnp.asarray(v))
    assert np.isfinite(np.asarray(g)).all()
    assert np.isfinite(np.asarray(jax.jit(vertex_areas)(v, f))).all()


def test_zero_area_triangle_documented_clamped_values():
    # the module docstring's clamp, closed form: cot = (a . b) / max(|a x b|, eps (|a|^2 + |b|^2))
    v = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [0, 2, 0], [0, 2, 0]], np.float64)
    f = np.array([[0, 1, 2],  # collinear: corners at 0 and 2 see angle 0, corner 1 sees 180 deg
                  [0, 3, 4]],  # coincident corners 3, 4: zero-length edge
                 np.int32)
    eps = 1e-6
    with jax.enable_x64(True):
        w = np.asarray(cotangent_weights(jnp.asarray(v), f, eps=eps))
        lap = cotangent_laplacian(jnp.asarray(v), f, eps=eps).todense()
    # face 0: at 0: a=(1,0,0), b=(3,0,0): 3 / (eps*10); at 1: a=(-1,0,0), b=(2,0,0): -2 / (eps*5);
    # at 2: a=(-3,0,0), b=(-2,0,0): 6 / (eps*13).  face 1: at 0: 4 / (eps*8); at 3, 4: a zero vector: 0
    expect = 0.5 * np.array([[3 / (10 * eps), -2 / (5 * eps), 6 / (13 * eps)], [4 / (8 * eps), 0.0, 0.0]])
    np.testing.assert_allclose(w, expect, rtol=1e-12)
    lap = np.asarray(lap)
    assert np.isfinite(lap).all()
    np.testing.assert_allclose(lap.sum(1), 0.0, atol=1e-6)
    np.testing.assert_allclose(lap, lap.T)


def test_obtuse_weight_is_true_negative_cotangent():
    ang = np.deg2rad(120.0)
    v = np.array([[0, 0, 0], [1, 0, 0], [np.cos(ang), np.sin(ang), 0]], np.float64)
    f = np.array([[0, 1, 2]], np.int32)
    with jax.enable_x64(True):
        w = np.asarray(cotangent_weights(jnp.asarray(v), f))
    assert w[0, 0] == pytest.approx(0.5 / np.tan(ang), rel=1e-12)
    assert w[0, 0] < 0


def test_bad_input_errors():
    v, f = icosphere(0)
    bad = v.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cotangent_laplacian(bad, f)
    with pytest.raises(ValueError, match="NaN"):
        laplacian_apply(bad, f, np.ones(len(v)))
    with pytest.raises(ValueError, match="shape"):
        cotangent_laplacian(v[:, :2], f)
    with pytest.raises(ValueError, match="range"):
        cotangent_laplacian(v, f + 100)
    with pytest.raises(TypeError):
        cotangent_laplacian(v, f.astype(np.float32))
