"""Tests of the damped Gauss-Newton solver."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import least_squares

from digitaltwin_jax.solvers.gauss_newton import GaussNewton, GaussNewtonConfig, dependent_leaves, gauss_newton, leaf_names

X = np.linspace(0.0, 2.0, 25)


def _model(p, x):
    return p["a"] * jnp.exp(p["b"] * x) + p["c"][0] * jnp.sin(3.0 * x)


def _data(noise=0.0):
    rng = np.random.default_rng(0)
    return 1.5 * np.exp(-0.8 * X) + 0.3 * np.sin(3.0 * X) + noise * rng.normal(size=X.size)


def _fit_term(p, y):
    return _model(p, X) - y


def _prior_term(p, y):
    return p["c"] - 0.1  # pulls c towards 0.1


P0 = {"a": 1.0, "b": -0.3, "c": np.array([0.0])}


def test_matches_scipy_least_squares():
    y = _data(noise=0.05)
    with jax.enable_x64(True):
        res = gauss_newton([_fit_term, _prior_term], P0, jnp.asarray(y), jnp.asarray([1.0, 0.5]), GaussNewtonConfig(num_iterations=15))
        got = np.array([res.x["a"], res.x["b"], res.x["c"][0]])

    def f(z):  # the same problem in plain numpy float64
        return np.r_[z[0] * np.exp(z[1] * X) + z[2] * np.sin(3.0 * X) - y, np.sqrt(0.5) * (z[2] - 0.1)]

    ref = least_squares(f, [1.0, -0.3, 0.0], xtol=1e-14, ftol=1e-14, gtol=1e-14).x
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)
    assert bool(res.success)
    e = np.asarray(res.energies)
    assert np.all(np.diff(e) <= 1e-12)  # never increases
    assert e[-1] == pytest.approx(np.sum(f(ref) ** 2), rel=1e-8)


def test_free_mask_and_bounds():
    y = _data()
    with jax.enable_x64(True):
        free = {"a": True, "b": False, "c": np.array([True])}
        res = gauss_newton([_fit_term], P0, jnp.asarray(y), config=GaussNewtonConfig(num_iterations=10), free=free)
        assert float(res.x["b"]) == -0.3  # frozen
        lower = {"a": -np.inf, "b": -np.inf, "c": np.array([0.0])}
        upper = {"a": 1.2, "b": np.inf, "c": np.array([np.inf])}
        res = gauss_newton(
            [_fit_term], P0, jnp.asarray(y), config=GaussNewtonConfig(num_iterations=20), lower=lower, upper=upper
        )
        assert float(res.x["a"]) <= 1.2 + 1e-12  # the unconstrained optimum is a = 1.5
        assert float(res.x["a"]) == pytest.approx(1.2, abs=1e-6)  # active bound
        assert float(res.x["c"][0]) >= 0.0


class _Structured:
    """The fit term with a hand-written normal-equation block (the StructuredResidual protocol)."""

    def __call__(self, p, y):
        return _fit_term(p, y)

    def normal_equations(self, p, y):
        r = _fit_term(p, y)
        e = jnp.exp(p["b"] * X)
        J = jnp.stack([e, p["a"] * X * e, jnp.sin(3.0 * X)], axis=1)  # d r / d (a, b, c)
        g = J.T @ r
        grad = {"a": g[0], "b": g[1], "c": g[2:3]}
        H = J.T @ J
        return jnp.sum(r * r), grad, [(("a", "b"), ("a", "b"), H[:2, :2]), (("c",), ("a", "b"), H[2:, :2]), (("c",), ("c",), H[2:, 2:])]


def test_structured_term_gives_same_iterates():
    y = jnp.asarray(_data(noise=0.05))
    with jax.enable_x64(True):
        cfg = GaussNewtonConfig(num_iterations=3)
        a = gauss_newton([_fit_term, _prior_term], P0, y, None, cfg)
        b = gauss_newton([_Structured(), _prior_term], P0, y, None, cfg)
        for k in ("a", "b", "c"):
            np.testing.assert_allclose(np.asarray(a.x[k]), np.asarray(b.x[k]), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(a.energies), np.asarray(b.energies), rtol=1e-10)


def test_update_hook_and_vmap():
    ys = jnp.stack([jnp.asarray(_data()), jnp.asarray(_data()) * 2.0])

    def update(p, y, i):  # a no-op hook that still runs every iteration
        return p, y

    with jax.enable_x64(True):
        run = jax.jit(jax.vmap(lambda y: gauss_newton([_fit_term], P0, y, config=GaussNewtonConfig(num_iterations=12), update=update).x))
        out = run(ys)
    np.testing.assert_allclose(np.asarray(out["a"]), [1.5, 3.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out["b"]), [-0.8, -0.8], rtol=1e-6)


def test_nan_step_is_never_taken():
    def bad(p, y):  # NaN as soon as a moves away from its start
        return jnp.where(p["a"] == 1.0, p["b"] - 1.0, jnp.nan) * jnp.ones(3)

    with jax.enable_x64(True):
        res = gauss_newton([bad], P0, None, config=GaussNewtonConfig(num_iterations=3))
    assert float(res.x["a"]) == 1.0
    assert np.all(np.isfinite(np.asarray(res.energies)))


def test_dependent_leaves_and_names():
    p = {"a": 1.0, "b": 2.0, "c": np.zeros(2)}
    assert leaf_names(p) == ("a", "b", "c")
    assert dependent_leaves(lambda p, y: p["c"] * 2.0 + y, p, 1.0) == (False, False, True)
    assert dependent_leaves(lambda p, y: jnp.stack([p["a"], p["b"]]), p, None) == (True, True, False)


def test_config_validation():
    with pytest.raises(ValueError):
        GaussNewtonConfig(num_iterations=-1)
    with pytest.raises(ValueError):
        GaussNewtonConfig(step_sizes=())
    with pytest.raises(ValueError):
        gauss_newton([], P0)
    assert dataclasses.is_dataclass(GaussNewtonConfig())


# ------------------------------------------------------------- init / step / terminate protocol


def _numpy_lm_step(z, y, w_prior, mu, eps_rel):
    """One damped Gauss-Newton step in plain numpy (central-difference Jacobian), full step."""

    def r(z):
        return np.r_[z[0] * np.exp(z[1] * X) + z[2] * np.sin(3.0 * X) - y, np.sqrt(w_prior) * (z[2] - 0.1)]

    J = np.stack([(r(z + h) - r(z - h)) / 2e-7 for h in np.eye(3) * 1e-7], axis=1)
    H, g = J.T @ J, J.T @ r(z)
    H = H + np.diag(mu * np.diag(H)) + eps_rel * np.mean(np.diag(H)) * np.eye(3)
    return z - np.linalg.solve(H, g), np.sum(r(z) ** 2)


def test_manual_steps_equal_the_compiled_solve_and_a_numpy_step():
    y = _data(noise=0.05)
    cfg = GaussNewtonConfig(num_iterations=6)
    with jax.enable_x64(True):
        solver = GaussNewton((_fit_term, _prior_term), cfg)
        state = solver.init(P0, jnp.asarray(y), jnp.asarray([1.0, 0.5]))
        step = jax.jit(solver.step)
        iterates = []
        while not bool(solver.terminate(state)):
            state = step(state)
            iterates.append(np.array([state.x["a"], state.x["b"], state.x["c"][0]]))
        manual = solver.result(state)
        compiled = jax.jit(lambda y: gauss_newton([_fit_term, _prior_term], P0, y, jnp.asarray([1.0, 0.5]), cfg))(jnp.asarray(y))
    assert len(iterates) == 6 and int(state.iteration) == 6
    for k in ("a", "b", "c"):
        np.testing.assert_allclose(np.asarray(manual.x[k]), np.asarray(compiled.x[k]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(manual.energies), np.asarray(compiled.energies), rtol=1e-12)
    # the first iterate is the numpy damped Gauss-Newton step from P0 (a full step is taken)
    z1, e0 = _numpy_lm_step(np.array([1.0, -0.3, 0.0]), y, 0.5, cfg.damping, cfg.min_damping)
    np.testing.assert_allclose(iterates[0], z1, rtol=1e-6)
    assert float(manual.energies[0]) == pytest.approx(e0, rel=1e-10)
    assert float(manual.step_sizes[0]) == 1.0


def test_custom_stopping_rule_stops_early():
    """Stop when an iteration lowers E by less than 1e-6 relative: fewer than the 50 allowed
    iterations, the same point as stepping by hand with the same rule, energies NaN after the stop."""
    y = jnp.asarray(_data(noise=0.05))
    cfg = GaussNewtonConfig(num_iterations=50)

    def converged(state):
        i = state.iteration
        prev = state.energies[jnp.maximum(i - 1, 0)]
        return (i > 0) & (prev - state.energy <= 1e-6 * prev)

    with jax.enable_x64(True):
        res = jax.jit(lambda y: gauss_newton([_fit_term, _prior_term], P0, y, None, cfg, stop=converged))(y)
        solver = GaussNewton((_fit_term, _prior_term), cfg)
        state = solver.init(P0, y)
        n = 0
        while not (bool(solver.terminate(state)) or bool(converged(state))):
            state = solver.step(state)
            n += 1
    e = np.asarray(res.energies)
    assert 2 <= n < 50
    assert np.all(np.isfinite(e[: n + 1])) and np.all(np.isnan(e[n + 1 :]))
    np.testing.assert_allclose(float(res.x["a"]), float(state.x["a"]), rtol=1e-12)
    assert np.asarray(res.step_sizes)[n:].max() == 0.0
