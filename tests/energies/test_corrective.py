"""Tests of the corrective-field term (eq. 2) and its exact elimination."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.geometry.laplacian import normalized_laplacian


def _grid(n=7, seed=0):
    """A bumpy n x n grid mesh (vertices (n*n, 3), faces (2 (n-1)^2, 3))."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    v = np.stack([x.ravel() * 10, y.ravel() * 10, rng.normal(0, 2.0, n * n)], axis=1)
    f = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            f += [[a, b, d], [a, d, c]]
    return v, np.array(f)


def _uniform_laplacian_reference(v, f):
    n = len(v)
    nbrs = [set() for _ in range(n)]
    for tri in f:
        for a in tri:
            for b in tri:
                if a != b:
                    nbrs[a].add(b)
    L = np.eye(n)
    for i in range(n):
        for j in nbrs[i]:
            L[i, j] -= 1.0 / len(nbrs[i])
    return L


def test_uniform_laplacian_matches_loop_reference():
    v, f = _grid()
    L = normalized_laplacian(v, f, "uniform").toarray()
    np.testing.assert_allclose(L, _uniform_laplacian_reference(v, f), atol=1e-12)
    np.testing.assert_allclose(L @ np.ones(len(v)), 0.0, atol=1e-12)


def test_cotangent_laplacian_rows_and_flat_grid():
    v, f = _grid()
    v[:, 2] = 0.0  # flat: the Laplacian of a linear function vanishes at interior vertices
    L = normalized_laplacian(v, f, "cotangent").toarray()
    np.testing.assert_allclose(L @ np.ones(len(v)), 0.0, atol=1e-12)
    interior = [i * 7 + j for i in range(1, 6) for j in range(1, 6)]
    lin = v[:, 0] * 0.3 - v[:, 1] * 0.7
    np.testing.assert_allclose((L @ lin)[interior], 0.0, atol=1e-9)


def test_laplacian_rejects_isolated_vertex():
    v, f = _grid()
    v = np.vstack([v, [[0.0, 0.0, 100.0]]])
    with pytest.raises(ValueError, match="neighbours"):
        normalized_laplacian(v, f)


def test_ell_matvec_matches_scipy():
    v, f = _grid()
    L = normalized_laplacian(v, f)
    x = np.random.default_rng(0).normal(size=(len(v), 3))
    with jax.enable_x64(True):
        got = corr.ell_matvec(corr.ell_matrix(L), jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(got), L @ x, atol=1e-12)
        np.testing.assert_allclose(np.asarray(corr.ell_matvec(corr.ell_matrix(L), jnp.asarray(x[:, 0]))), L @ x[:, 0], atol=1e-12)


def test_corrective_residual_is_eq2():
    v, f = _grid()
    L = normalized_laplacian(v, f)
    rng = np.random.default_rng(1)
    dp, off = rng.normal(size=(len(v), 3)), rng.normal(size=(len(v), 3))
    with jax.enable_x64(True):
        r = np.asarray(corr.corrective_residual(jnp.asarray(dp), jnp.asarray(off), corr.ell_matrix(L), 4.0))
    expect = np.sum((L @ (off + dp)) ** 2) + 4.0 * np.sum(dp**2)
    assert np.sum(r**2) == pytest.approx(expect, rel=1e-10)


@pytest.fixture(scope="module")
def problem():
    v, f = _grid()
    n = len(v)
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(3, n, 3))  # M = 3 smooth-ish blendshapes
    handles = np.array([3, 8, 9, 17, 24, 25, 31, 40, 41, 47])
    lam = 4.0
    L = normalized_laplacian(v, f)
    cc = corr.condense_corrective(L, basis, handles, lam)
    # samples: vertices and barycentric points over the handles (handle-local indices)
    idx = np.array([[0, 0, 0], [1, 2, 1], [3, 4, 5], [6, 6, 6], [7, 8, 9]])
    w = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.2, 0.3, 0.5], [1.0, 0, 0], [0.6, 0.2, 0.2]])
    return dict(v=v, f=f, L=L.toarray(), basis=basis, handles=handles, lam=lam, cc=cc, idx=idx, w=w)


def _kkt_reference(p, b, d):
    """min ||L (B b + x)||^2 + lam ||x||^2 s.t. S x = d (per coordinate), by a dense KKT solve."""
    L, lam, n = p["L"], p["lam"], p["L"].shape[0]
    S = np.zeros((len(p["idx"]), n))
    for i, (ii, ww) in enumerate(zip(p["idx"], p["w"])):
        for k in range(3):
            S[i, p["handles"][ii[k]]] += ww[k]
    A = L.T @ L + lam * np.eye(n)
    kkt = np.block([[A, S.T], [S, np.zeros((len(S), len(S)))]])
    bb = np.tensordot(b, p["basis"], axes=1)  # (n, 3)
    x = np.zeros((n, 3))
    for c in range(3):
        rhs = np.r_[-(L.T @ L) @ bb[:, c], d[:, c]]
        x[:, c] = np.linalg.solve(kkt, rhs)[:n]
    energy = np.sum((L @ (bb + x)) ** 2) + lam * np.sum(x**2)
    return x, energy


def test_condensed_energy_and_field_match_kkt(problem):
    p = problem
    rng = np.random.default_rng(3)
    b = rng.normal(size=3) * 0.5
    d = rng.normal(size=(len(p["idx"]), 3))
    x_ref, e_ref = _kkt_reference(p, b, d)
    with jax.enable_x64(True):
        args = (jnp.asarray(b), jnp.asarray(d), jnp.asarray(p["idx"]), jnp.asarray(p["w"]), p["cc"])
        r = np.asarray(corr.condensed_residual(*args))
        dh = np.asarray(corr.offsets_at_handles(*args))
        field = np.asarray(
            corr.corrective_field(*args[:4], jnp.asarray(p["handles"]), jnp.asarray(p["basis"]), p["cc"])
        )
    assert np.sum(r**2) == pytest.approx(e_ref, rel=1e-5)  # the ridge on G is relative 1e-6
    np.testing.assert_allclose(dh, x_ref[p["handles"]], atol=1e-4)
    np.testing.assert_allclose(field, x_ref, atol=1e-4)


def test_condensed_residual_is_linear_and_differentiable(problem):
    p = problem
    from jax.test_util import check_grads

    with jax.enable_x64(True):
        idx, w = jnp.asarray(p["idx"]), jnp.asarray(p["w"])

        def f(b, d):
            return corr.condensed_residual(b, d, idx, w, p["cc"])

        check_grads(f, (jnp.ones(3) * 0.2, jnp.ones((5, 3))), order=1, modes=("fwd",))


def test_condense_rejects_bad_lambda(problem):
    with pytest.raises(ValueError, match="lambda_delta"):
        corr.condense_corrective(sp.csr_matrix(problem["L"]), problem["basis"], problem["handles"], 0.0)
