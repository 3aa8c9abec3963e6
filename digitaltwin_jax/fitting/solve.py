"""The solve: re-linearisation between iterations, the jitted (and vmapped) Gauss-Newton run, the
full-mesh outputs and their conversion to a :class:`~digitaltwin_jax.fitting.variables.FitResult`."""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import intrinsics_np, transform
from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.fitting import exported
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.problem import FitProblem
from digitaltwin_jax.fitting.terms import HOOK_PHASES, Term, bind, default_terms, term_per_topology, term_unknowns
from digitaltwin_jax.fitting.variables import _PER_FACE, FitData, FitParams, FitResult, FitVariables
from digitaltwin_jax.solvers.gauss_newton import (
    GaussNewton,
    GaussNewtonConfig,
    GaussNewtonResult,
    GaussNewtonState,
    gauss_newton,
)


def _relinearize(v: FitVariables, data: FitData, it, *, fns):
    """Re-linearise between iterations: every term's hooks, phase by phase (:data:`HOOK_PHASES`).

    With the default terms: the corrective term recovers the eliminated field at the handles, the
    landmark term slides the jaw samples onto the silhouette, the corrective term re-samples the
    offsets and its Gram factor there."""
    for phase in HOOK_PHASES:
        for fn in fns:
            hook = fn.hook(phase)
            if hook is not None:
                v, data = hook(v, data, it)
    return v, data


def _solver(*, fns, gn: GaussNewtonConfig, flags) -> tuple[GaussNewton, dict]:
    """One face's :class:`GaussNewton` (the terms, re-linearisation between steps) and its
    ``free`` / ``lower`` / ``upper`` pytrees (like :class:`FitVariables`)."""
    free_names, beta_lo, beta_hi = flags
    inf = jnp.inf
    free = FitVariables(**{f.name: f.name in free_names for f in dataclasses.fields(FitVariables)})
    lower = FitVariables(beta=beta_lo, alpha=-inf, t=-inf, q=-inf, f_s=0.05, offsets=-inf)
    upper = FitVariables(beta=beta_hi, alpha=inf, t=inf, q=inf, f_s=20.0, offsets=inf)
    upd = functools.partial(_relinearize, fns=fns)
    return GaussNewton(fns, gn, upd), dict(free=free, lower=lower, upper=upper)


def _finish(res: GaussNewtonResult):
    """``(variables, last data fields, solver info)`` of a finished solve (what :func:`_outputs` reads)."""
    d = res.args
    last = dict(
        beta_prev=d.beta_prev, sample_idx=d.sample_idx, sample_w=d.sample_w, gram_chol=d.gram_chol,
        focal=d.focal, principal=d.principal,
    )
    return res.x, last, dict(energy=res.energies, step_sizes=res.step_sizes, energy_terms=res.term_energies, success=res.success)


def _solve(data: FitData, v0: FitVariables, weights, *, fns, gn: GaussNewtonConfig, flags):
    """The Gauss-Newton solve for one face (jitted; vmapped by fit_batch)."""
    solver, bounds = _solver(fns=fns, gn=gn, flags=flags)
    return _finish(gauss_newton(fns, v0, data, weights, gn, update=solver.update, **bounds))


def _outputs(v: FitVariables, last: dict, corrective, full, *, fit_corrective: bool):
    """Full-mesh outputs for one face (jitted separately: shared by every term set and config)."""
    base, identity, expression, handles = full
    if fit_corrective:
        delta = corr.corrective_field(
            v.beta - last["beta_prev"], v.offsets, last["sample_idx"], last["sample_w"], handles, expression, corrective,
            last["gram_chol"],
        )
    else:
        delta = jnp.zeros_like(base)
    verts = base + jnp.tensordot(v.alpha, identity, axes=1) + jnp.tensordot(v.beta, expression, axes=1) + delta
    qn = v.q / jnp.linalg.norm(v.q)
    qn = qn * jnp.where(qn[0] < 0, -1.0, 1.0)
    cam = transform(verts, qn, v.t)
    lm3 = lmk.sample_points(verts, handles[last["sample_idx"]], last["sample_w"])
    px = lmk.project_points(lm3, qn, v.t, v.f_s, last["focal"], last["principal"])
    return dict(
        beta=v.beta, alpha=v.alpha, t=v.t, q=qn, f_s=v.f_s, delta_p=delta, vertices=verts, vertices_camera=cam,
        landmarks_2d=px, sample_idx=handles[last["sample_idx"]], sample_w=last["sample_w"],
    )


_STATIC = ("fns", "gn", "flags")
_solve_jit = jax.jit(_solve, static_argnames=_STATIC)
_outputs_jit = jax.jit(_outputs, static_argnames=("fit_corrective",))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _solve_batch(data, v0, weights, *, fns, gn, flags):
    axes = FitData(**{f.name: (0 if f.name in _PER_FACE else None) for f in dataclasses.fields(FitData)})
    return jax.vmap(functools.partial(_solve, fns=fns, gn=gn, flags=flags), in_axes=(axes, 0, None))(data, v0, weights)


@functools.partial(jax.jit, static_argnames=("fit_corrective",))
def _outputs_batch(v, last, corrective, full, *, fit_corrective):
    base_axis = 0 if full[0].ndim == 3 else None
    fn = functools.partial(_outputs, fit_corrective=fit_corrective)
    return jax.vmap(fn, in_axes=(0, 0, None, (base_axis, None, None, None)))(v, last, corrective, full)


# ------------------------------------------------------------------ one face, step by step (api.FitStepper)
def _init_state(data, v0, weights, *, fns, gn, flags) -> GaussNewtonState:
    # eager: a few array constructions (compiling this under jit aborted XLA on CPU, jax 0.7)
    solver, bounds = _solver(fns=fns, gn=gn, flags=flags)
    return solver.init(v0, data, weights, **bounds)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _step_state(state: GaussNewtonState, *, fns, gn, flags) -> GaussNewtonState:
    return _solver(fns=fns, gn=gn, flags=flags)[0].step(state)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _finish_state(state: GaussNewtonState, *, fns, gn, flags):
    return _finish(_solver(fns=fns, gn=gn, flags=flags)[0].result(state))


def _run(data, v0, weights, full, statics, batched: bool, corrective: bool):
    """The jitted solve and full-mesh outputs: one face, or (``batched``) B faces whose per-face
    fields of ``data``, ``v0`` and (when ``(B, V, 3)``) base shape ``full[0]`` carry a leading axis.

    Goes through :func:`~digitaltwin_jax.fitting.exported.call`: with the shared store's folder set
    (the command line), a new process loads the traced solve from disk instead of tracing it."""
    run = functools.partial(_run_jitted, statics=statics, batched=batched, corrective=corrective)
    return exported.call(run, (data, v0, weights, full), (statics, batched, corrective))


def _run_jitted(data, v0, weights, full, *, statics, batched: bool, corrective: bool):
    if batched:
        v, last, info = _solve_batch(data, v0, weights, **statics)
        out = _outputs_batch(v, last, data.corrective, full, fit_corrective=corrective)
    else:
        v, last, info = _solve_jit(data, v0, weights, **statics)
        out = _outputs_jit(v, last, data.corrective, full, fit_corrective=corrective)
    return {**out, **info}


def _terms_static(terms, config):
    terms = default_terms(config) if terms is None else tuple(terms)
    if not terms:
        raise ValueError("terms must not be empty")
    for t in terms:
        if not isinstance(t, Term) or not callable(t.fn) or not np.isfinite(t.weight) or t.weight < 0:
            raise TypeError(f"every term must be a Term with a callable fn and a weight >= 0, got {t!r}")
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"term names must be unique, got {names}")
    leaves = {f.name for f in dataclasses.fields(FitVariables)}
    for t in terms:
        unknown = set(term_unknowns(t)) - leaves
        if unknown:
            raise ValueError(f"term {t.name!r} declares unknowns {sorted(unknown)}; the fit's variables are {sorted(leaves)}")
    if not config.fit_corrective and uses_corrective(terms):
        raise ValueError(
            "FitConfig(fit_corrective=False) contradicts the 'corrective' term in terms=; drop the term "
            "instead (fit_corrective is deprecated: it only leaves the term out of default_terms)"
        )
    return terms


def uses_corrective(terms) -> bool:
    """Whether a term needs the corrective condensation (and so deltaP is recovered at the end)."""
    return any("corrective" in term_per_topology(t) for t in terms)


def free_variables(terms, config: FitConfig) -> tuple[str, ...]:
    """The free :class:`FitVariables` leaves: those an active term declares (``unknowns``), less
    the ones the configuration fixes (``fit_expression``, ``fit_focal``; alpha has size 0 unless
    ``fit_identity``)."""
    declared = set().union(*(term_unknowns(t) for t in terms))
    fixed = {n for n, on in (("beta", config.fit_expression), ("f_s", config.fit_focal)) if not on}
    return tuple(f.name for f in dataclasses.fields(FitVariables) if f.name in declared - fixed)


def _statics(config: FitConfig, terms):
    gn = GaussNewtonConfig(num_iterations=config.num_iterations, damping=config.damping)
    flags = (free_variables(terms, config), float(config.beta_bounds[0]), float(config.beta_bounds[1]))
    return dict(fns=tuple(bind(t) for t in terms), gn=gn, flags=flags)


def _full_arrays(problem: FitProblem, base):
    base = problem.mean if base is None else jnp.asarray(base, jnp.float64)
    return (base, problem.identity_full, problem.expression_full, jnp.asarray(problem.handles))


def _to_f64(tree):
    """Device arrays for a pytree: numpy floats become float64 (call inside ``enable_x64``)."""

    def conv(a):
        if isinstance(a, jax.Array):
            return a
        a = np.asarray(a)
        return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a

    return jax.device_put(jax.tree_util.tree_map(conv, tree))


def _result(out, terms, image_size, landmarks, valid) -> FitResult:
    o = {k: np.asarray(v) for k, v in out.items()}
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    h, w = image_size
    err = np.linalg.norm(o["landmarks_2d"] - landmarks, axis=-1)
    err = np.where(valid, err, np.nan)
    K = intrinsics_np((h, w), o["f_s"])
    return FitResult(
        params=FitParams(
            beta=f32(o["beta"]), delta_p=f32(o["delta_p"]), t=f32(o["t"]), q=f32(o["q"]), f_s=f32(o["f_s"]),
            alpha=f32(o["alpha"]),
        ),
        vertices=f32(o["vertices"]),
        vertices_camera=f32(o["vertices_camera"]),
        landmarks_2d=f32(o["landmarks_2d"]),
        reprojection_errors=f32(err),
        landmark_indices=o["sample_idx"].astype(np.int32),
        landmark_weights=f32(o["sample_w"]),
        energy=f32(o["energy"]),
        step_sizes=f32(o["step_sizes"]),
        energy_terms={t.name: f32(o["energy_terms"][..., i]) for i, t in enumerate(terms)},
        intrinsics=f32(K),
        success=o["success"].astype(bool),
    )
