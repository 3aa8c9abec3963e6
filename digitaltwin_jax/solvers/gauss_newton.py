"""Damped Gauss-Newton (Levenberg-Marquardt) over a list of residual terms (paper eq. 4, sec. 3.4).

Minimises ``E(x) = sum_k w_k ||r_k(x, args)||^2`` for a pytree ``x`` with a fixed number of
iterations (the paper uses N = 5), so it can be jit-compiled and vmapped.  One iteration:

1. ``x, args = update(x, args, i)`` (optional): re-linearisation hooks that are not differentiable,
   e.g. re-selecting the sliding contour or fixing beta^{t-1};
2. ``J = d r / d x`` of the plain terms (stacked, weighted) by forward-mode autodiff (``jax.jacfwd``)
   *only over the leaves of x they depend on* (found once at trace time from their jaxprs), and
   ``H += J^T J``, ``g += J^T r`` on those columns - priors on a few parameter blocks cost nothing
   for the others.  A term that knows its structure may instead supply its block of
   the normal equations itself (see :class:`StructuredResidual`);
3. entries that are frozen (``free == False``) or sit on an active bound (``lower``/``upper`` with
   the gradient pointing outward) get no step;
4. solve ``(H + mu diag(H) + eps I) dx = -g`` by Cholesky (Marquardt damping);
5. backtracking: evaluate ``x + s dx`` for every ``s`` in ``step_sizes`` (clipped to the bounds) and
   keep the best, or keep ``x`` when none decreases E (E never increases; a NaN step is never taken).

The result reports the energy before every iteration and at the end, and whether the final point is
finite; failure is reported, not hidden.  Precision follows the inputs: pass float64 arrays inside
``jax.enable_x64(True)`` where conditioning needs it (the fitting module does).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = [
    "GaussNewtonConfig", "GaussNewtonResult", "GaussNewtonState", "GaussNewton", "StructuredResidual", "gauss_newton",
    "dependent_leaves", "leaf_names",
]


@dataclasses.dataclass(frozen=True)
class GaussNewtonConfig:
    """Solver settings.

    Attributes:
      num_iterations: N, fixed number of iterations (paper: 5).
      damping: Marquardt factor mu on ``diag(H)``.
      min_damping: absolute ridge ``eps = min_damping * mean(diag(H))``.
      step_sizes: backtracking candidates tried after each solve (the current point is always kept
        as a fallback).
    """

    num_iterations: int = 5
    damping: float = 1e-3
    min_damping: float = 1e-9
    step_sizes: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)

    def __post_init__(self):
        if self.num_iterations < 0:
            raise ValueError(f"num_iterations must be >= 0, got {self.num_iterations}")
        if self.damping < 0 or self.min_damping < 0:
            raise ValueError("damping and min_damping must be >= 0")
        if not self.step_sizes or any(s <= 0 for s in self.step_sizes):
            raise ValueError(f"step_sizes must be a non-empty tuple of positive numbers, got {self.step_sizes}")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["x", "args", "energies", "term_energies", "step_sizes", "success"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class GaussNewtonResult:
    """Solver output.

    Attributes:
      x: the final parameters (same pytree as x0).
      args: the final args (after the last ``update``).
      energies: ``(N + 1,)`` E before each iteration (after its update) and at the end.
      term_energies: ``(len(residual_fns),)`` weighted energy of each term at the end.
      step_sizes: ``(N,)`` step length taken per iteration (0 = no decrease found).
      success: scalar bool, the final x and energy are finite.
    """

    x: Any
    args: Any
    energies: jax.Array
    term_energies: jax.Array
    step_sizes: jax.Array
    success: jax.Array


class StructuredResidual:
    """Protocol (duck-typed) for a residual term that supplies its own normal-equation block.

    Besides ``__call__(x, args) -> (R,)`` (used for the energy and the line search) it defines
    ``normal_equations(x, args) -> (e, g, blocks)`` with ``e = ||r||^2``, ``g = J^T r`` as a pytree
    like x (zeros where the term does not depend), and ``blocks`` a list of
    ``(row_leaves, col_leaves, B)``: ``B = J_rows^T J_cols`` over the concatenation of the named
    leaves (names as :func:`leaf_names`); for ``row_leaves != col_leaves`` the solver adds the
    transpose too.  Use it when J^T J has structure autodiff would not see (block-diagonal,
    constant, closed form); test it against ``jax.jacfwd`` of ``__call__``.
    """

    def __call__(self, x, args):  # pragma: no cover - protocol
        raise NotImplementedError

    def normal_equations(self, x, args):  # pragma: no cover - protocol
        raise NotImplementedError


def leaf_names(x) -> tuple[str, ...]:
    """Names of the leaves of pytree ``x`` in flattening order: ``"beta"`` for a dataclass field or
    dict key ``beta``, ``"a/0"`` for nested containers."""

    def part(k):
        for attr in ("name", "key", "idx"):
            if hasattr(k, attr):
                return str(getattr(k, attr))
        return str(k)

    paths = jax.tree_util.tree_flatten_with_path(x)[0]
    return tuple("/".join(part(k) for k in p) for p, _ in paths)


def dependent_leaves(fn: Callable[[Any, Any], jax.Array], x, args) -> tuple[bool, ...]:
    """Which leaves of ``x`` the output of ``fn(x, args)`` can depend on (conservative, trace-time).

    Forward data-flow over the jaxpr: an equation's outputs depend on a leaf when any input does
    (nested calls are treated as a whole, which only over-approximates).
    """
    leaves, treedef = jax.tree_util.tree_flatten(x)

    def flat_fn(*ls):
        return fn(jax.tree_util.tree_unflatten(treedef, ls), args)

    jaxpr = jax.make_jaxpr(flat_fn)(*leaves).jaxpr
    out = []
    for k in range(len(leaves)):
        dep = {jaxpr.invars[k]}
        for eqn in jaxpr.eqns:
            if any((not isinstance(v, jax_core.Literal)) and v in dep for v in eqn.invars):
                dep.update(eqn.outvars)
        out.append(any((not isinstance(v, jax_core.Literal)) and v in dep for v in jaxpr.outvars))
    return tuple(out)


def _leaf_slices(x) -> list[tuple[int, int]]:
    sizes = [int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(x)]
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    return [(int(a), int(a + n)) for a, n in zip(starts, sizes)]


def _runs(leaf_ids: Sequence[int], slices) -> list[tuple[int, int]]:
    """Merge the flat ranges of the given leaves (in order) into contiguous (start, stop) runs."""
    runs: list[list[int]] = []
    for i in leaf_ids:
        a, b = slices[i]
        if b == a:
            continue
        if runs and runs[-1][1] == a:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    return [(a, b) for a, b in runs]


def _gather(z, runs):
    return jnp.concatenate([z[a:b] for a, b in runs]) if runs else z[:0]


def _scatter(z, runs, values):
    """z with the entries of ``runs`` replaced by ``values`` (static slices, no scatter op)."""
    pieces, pos, k = [], 0, 0
    for a, b in runs:
        pieces += [z[pos:a], values[k : k + b - a]]
        pos, k = b, k + b - a
    pieces.append(z[pos:])
    return jnp.concatenate(pieces)


def _add_block(H, row_runs, col_runs, block):
    """H[rows, cols] += block for run-structured rows/cols (static slices)."""
    ro = 0
    for ra, rb in row_runs:
        co = 0
        for ca, cb in col_runs:
            H = H.at[ra:rb, ca:cb].add(block[ro : ro + rb - ra, co : co + cb - ca])
            co += cb - ca
        ro += rb - ra
    return H


def _add_vec(g, runs, vec):
    o = 0
    for a, b in runs:
        g = g.at[a:b].add(vec[o : o + b - a])
        o += b - a
    return g


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["x", "args", "weights", "free", "lower", "upper", "iteration", "energy", "energies", "step_sizes"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class GaussNewtonState:
    """The solver's state between steps (a pytree: jit, vmap and inspect it freely).

    Attributes:
      x: the current iterate (pytree like x0; each leaf keeps its dtype).
      args: the current args (after the last ``update``).
      weights: ``(T,)`` term weights.  free, lower, upper: ``(n,)`` flat mask and bounds.
      iteration: ``() int32`` steps taken so far.
      energy: ``()`` E at ``x`` (with the args of the last step; inf before the first step).
      energies: ``(N + 1,)`` E at the start of every step taken (after its update), NaN for steps not
        taken; :meth:`GaussNewton.result` adds the final energy.
      step_sizes: ``(N,)`` the step length of every step taken (0 = no decrease found).
    """

    x: Any
    args: Any
    weights: jax.Array
    free: jax.Array
    lower: jax.Array
    upper: jax.Array
    iteration: jax.Array
    energy: jax.Array
    energies: jax.Array
    step_sizes: jax.Array


@dataclasses.dataclass(frozen=True)
class GaussNewton:
    """Damped Gauss-Newton as ``init / step / terminate / result`` (the optimistix pattern).

    ``state = solver.init(x0, args, weights, free=..., lower=..., upper=...)``, then
    ``while not solver.terminate(state): state = solver.step(state)`` - inspect every iterate, stop
    on a rule of your own - and ``solver.result(state)``.  :func:`gauss_newton` runs the same loop
    compiled (``lax.while_loop``).  Hashable: pass it to ``jax.jit`` as a static argument or close
    over it (``jax.jit(solver.step)``).

    Attributes:
      residual_fns: tuple of ``(x, args) -> (R_k,)`` (or :class:`StructuredResidual`).
      config: :class:`GaussNewtonConfig` (``num_iterations`` is the most steps :meth:`terminate` allows).
      update: optional ``(x, args, iteration) -> (x, args)`` re-linearisation before every step.
    """

    residual_fns: tuple
    config: GaussNewtonConfig = GaussNewtonConfig()
    update: Callable[[Any, Any, jax.Array], tuple[Any, Any]] | None = None

    def __post_init__(self):
        if not tuple(self.residual_fns):
            raise ValueError("residual_fns must not be empty")
        object.__setattr__(self, "residual_fns", tuple(self.residual_fns))

    def init(self, x0, args=None, weights=None, *, free=None, lower=None, upper=None) -> GaussNewtonState:
        """The state before the first step (``free``/``lower``/``upper``: pytrees like x0)."""
        z0, unravel = ravel_pytree(x0)
        dtype, n = z0.dtype, z0.shape[0]
        nf = self.config.num_iterations

        def flat(tree, fill):
            if tree is None:
                return jnp.full((n,), fill, dtype)
            leaves = jax.tree_util.tree_map(lambda a, b: jnp.broadcast_to(jnp.asarray(b, dtype), jnp.shape(a)), x0, tree)
            return ravel_pytree(leaves)[0]

        w = jnp.ones((len(self.residual_fns),), dtype) if weights is None else jnp.asarray(weights, dtype)
        return GaussNewtonState(
            x=unravel(z0), args=args, weights=w, free=flat(free, 1.0) > 0.5, lower=flat(lower, -jnp.inf), upper=flat(upper, jnp.inf),
            iteration=jnp.zeros((), jnp.int32), energy=jnp.full((), jnp.inf, dtype),
            energies=jnp.full((nf + 1,), jnp.nan, dtype), step_sizes=jnp.zeros((nf,), dtype),
        )

    def terminate(self, state: GaussNewtonState) -> jax.Array:
        """``() bool``: the iteration budget (``config.num_iterations``) is spent."""
        return state.iteration >= self.config.num_iterations

    def _term_energies(self, x, a, w):
        return jnp.stack([w[k] * jnp.sum(jnp.square(fn(x, a))) for k, fn in enumerate(self.residual_fns)])

    def _normal_equations(self, x, a, w):
        """``(H (n, n), g (n,), E)`` at ``x`` (structured blocks + jacfwd of the plain terms)."""
        fns = self.residual_fns
        z, unravel = ravel_pytree(x)
        dtype, n = z.dtype, z.shape[0]
        structured = [hasattr(fn, "normal_equations") for fn in fns]
        plain = [k for k, st in enumerate(structured) if not st]
        slices = _leaf_slices(x)
        names = leaf_names(x)
        # all plain terms are differentiated together, over the union of the leaves they depend on
        dep = np.zeros(len(slices), bool)
        for k in plain:
            dep |= np.asarray(dependent_leaves(fns[k], x, a), bool)
        plain_runs = _runs(np.flatnonzero(dep).tolist(), slices)

        def group_runs(group):
            unknown = [g for g in group if g not in names]
            if unknown:
                raise ValueError(f"unknown leaves {unknown} in a structured term's blocks; leaves are {names}")
            return _runs([names.index(g) for g in group], slices)

        H = jnp.zeros((n, n), dtype)
        g = jnp.zeros((n,), dtype)
        e = jnp.zeros((), dtype)
        for k, fn in enumerate(fns):
            if structured[k]:
                ek, gk, blocks = fn.normal_equations(x, a)
                e = e + w[k] * ek
                g = g + w[k] * ravel_pytree(gk)[0].astype(dtype)
                for rows_l, cols_l, blk in blocks:
                    rr, cr = group_runs(tuple(rows_l)), group_runs(tuple(cols_l))
                    H = _add_block(H, rr, cr, w[k] * blk)
                    if tuple(rows_l) != tuple(cols_l):
                        H = _add_block(H, cr, rr, w[k] * blk.T)
        if plain:

            def sub(zs):
                xs = unravel(_scatter(z, plain_runs, zs))
                return jnp.concatenate([jnp.sqrt(w[k]) * fns[k](xs, a).reshape(-1) for k in plain])

            zk = _gather(z, plain_runs)
            r = sub(zk)
            e = e + jnp.sum(r * r)
            if zk.shape[0]:
                J = jax.jacfwd(sub)(zk)
                H = _add_block(H, plain_runs, plain_runs, J.T @ J)
                g = _add_vec(g, plain_runs, J.T @ r)
        return H, g, e

    def step(self, state: GaussNewtonState) -> GaussNewtonState:
        """One iteration: update, normal equations, masked damped Cholesky solve, backtracking."""
        cfg = self.config
        i = state.iteration
        x, a = state.x, state.args
        if self.update is not None:
            x, a = self.update(x, a, i)
        z, unravel = ravel_pytree(x)
        dtype = z.dtype
        w, lo, hi = state.weights.astype(dtype), state.lower.astype(dtype), state.upper.astype(dtype)
        H, g, e0 = self._normal_equations(x, a, w)
        active = ((z <= lo) & (g > 0)) | ((z >= hi) & (g < 0))
        move = state.free & ~active
        mf = move.astype(dtype)
        d = jnp.diag(H)
        scale = jnp.maximum(jnp.mean(jnp.where(move, d, 0.0)), jnp.finfo(dtype).tiny)
        H = H * mf[:, None] * mf[None, :]
        H = H + jnp.diag(cfg.damping * d * mf + cfg.min_damping * scale + (1.0 - mf))
        chol = jnp.linalg.cholesky(H)
        # two triangular solves: jax.scipy.linalg.cho_solve is ~100x slower under vmap on CPU
        y = jax.scipy.linalg.solve_triangular(chol, g * mf, lower=True)
        dz = -jax.scipy.linalg.solve_triangular(chol, y, lower=True, trans="T") * mf
        steps = jnp.asarray(cfg.step_sizes, dtype)
        cand = jnp.clip(z[None, :] + steps[:, None] * dz[None, :], lo, hi)

        def energy(zc):
            e = jnp.sum(self._term_energies(unravel(zc), a, w))
            return jnp.where(jnp.isfinite(e), e, jnp.inf)

        ec = jax.vmap(energy)(cand)
        k = jnp.argmin(ec)
        better = ec[k] < e0
        return dataclasses.replace(
            state, x=unravel(jnp.where(better, cand[k], z)), args=a, iteration=i + 1,
            energy=jnp.where(better, ec[k], e0), energies=state.energies.at[i].set(e0),
            step_sizes=state.step_sizes.at[i].set(jnp.where(better, steps[k], 0.0)),
        )

    def result(self, state: GaussNewtonState) -> GaussNewtonResult:
        """The :class:`GaussNewtonResult` of ``state`` (final energy at ``energies[iteration]``)."""
        final_terms = self._term_energies(state.x, state.args, state.weights)
        e_final = jnp.sum(final_terms)
        z = ravel_pytree(state.x)[0]
        success = jnp.isfinite(e_final) & jnp.all(jnp.isfinite(z))
        return GaussNewtonResult(
            x=state.x, args=state.args, energies=state.energies.at[state.iteration].set(e_final),
            term_energies=final_terms, step_sizes=state.step_sizes, success=success,
        )


def gauss_newton(
    residual_fns: Sequence[Callable[[Any, Any], jax.Array]],
    x0,
    args=None,
    weights=None,
    config: GaussNewtonConfig = GaussNewtonConfig(),
    *,
    update: Callable[[Any, Any, jax.Array], tuple[Any, Any]] | None = None,
    free=None,
    lower=None,
    upper=None,
    stop: Callable[[GaussNewtonState], jax.Array] | None = None,
) -> GaussNewtonResult:
    """Minimise ``sum_k weights[k] ||residual_fns[k](x, args)||^2`` (see module docstring): the
    :class:`GaussNewton` loop compiled with ``lax.while_loop``.

    Args:
      residual_fns: sequence of ``(x, args) -> (R_k,)`` residual functions (one per energy term).
      x0: initial parameters, a pytree of float arrays.
      args: a pytree passed to the residual functions and ``update``.
      weights: ``(len(residual_fns),)`` non-negative term weights (default all 1); may be traced.
      config: :class:`GaussNewtonConfig`.
      update: optional ``(x, args, iteration) -> (x, args)`` called before every iteration.
      free: optional pytree like x0 of bools; False entries never move.
      lower, upper: optional pytrees like x0 of bounds (use +-inf for none).
      stop: optional ``(GaussNewtonState) -> () bool``, checked before every step: a stopping rule
        of your own on top of the iteration budget.  Under ``vmap`` a per-item rule makes the loop
        run until every item stops (stopped items are not changed).
    """
    solver = GaussNewton(tuple(residual_fns), config, update)
    state = solver.init(x0, args, weights, free=free, lower=lower, upper=upper)

    def cont(s):
        done = solver.terminate(s)
        return ~(done | stop(s)) if stop is not None else ~done

    state = jax.lax.while_loop(cont, solver.step, state)
    return solver.result(state)
