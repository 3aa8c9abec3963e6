"""The public entry points: :func:`fit` (one face), :func:`fit_batch` (B faces in one vmapped solve)
and :func:`fit_stepper` (one face's solve as init / step / terminate, to inspect every iteration).

:func:`fit` is :func:`fit_batch` with a batch of one (the batch axis removed from the result).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.inputs import _check_image_size, _check_landmarks
from digitaltwin_jax.fitting.problem import FitProblem, _face_inputs, _shared_data, _term_inputs, prepare
from digitaltwin_jax.fitting.solve import (
    _finish_state,
    _full_arrays,
    _init_state,
    _outputs_jit,
    _result,
    _run,
    _statics,
    _step_state,
    _terms_static,
    _to_f64,
    uses_corrective,
)
from digitaltwin_jax.fitting.terms import Term
from digitaltwin_jax.fitting.variables import FitData, FitResult
from digitaltwin_jax.model.head_model import HeadModel
from digitaltwin_jax.solvers.gauss_newton import GaussNewtonState

__all__ = ["fit", "fit_batch", "FitStepper", "fit_stepper"]


# fit and fit_batch share their signature on purpose: fit is the public one-face form of fit_batch
def fit(
    model: HeadModel,
    landmarks_2d,
    image_size,
    shape=None,
    config: FitConfig = FitConfig(),
    *,
    terms=None,
    landmark_weights=None,
    problem: FitProblem | None = None,
) -> FitResult:
    """Fit pose, focal, expression, corrective field (and optionally identity) to 68 landmarks.

    Args:
      model: the head model (any resolution; the topology's constants are cached, see :func:`prepare`).
      landmarks_2d: ``(68, 2)`` iBUG-68 pixels (x = column, y = row); NaN rows are missing landmarks.
      image_size: ``(h, w)`` pixels.
      shape: optional ``(V, 3)`` regressed neutral shape P (mm, head frame); default the mean head.
      config: :class:`FitConfig` (the paper's weights by default).
      terms: optional tuple of :class:`Term` replacing :func:`default_terms` ``(config)``; a term's
        ``data`` is this face's (no batch axis).  The free variables follow from the terms (e.g.
        without the ``"corrective"`` term deltaP stays 0) and the configuration.
      landmark_weights: optional ``(68,)`` non-negative per-landmark weights (times ``jaw_weight``).
      problem: optional :func:`prepare` output for this model and config.

    Returns:
      :class:`FitResult`.

    Raises:
      ValueError: wrong shapes, fewer than 6 finite landmarks, collinear landmarks, bad config.
    """
    lm, shapes, terms, lw = _batch_of_one(landmarks_2d, shape, terms, landmark_weights)
    res = fit_batch(model, lm, image_size, shapes, config, terms=terms, landmark_weights=lw, problem=problem)
    return _first(res)


def _batch_of_one(landmarks_2d, shape, terms, landmark_weights):
    """One face's :func:`fit` arguments with the leading batch axis of one that :func:`fit_batch`
    takes: ``(landmarks (1, 68, 2), shapes (1, V, 3) or None, terms, landmark_weights (1, 68) or None)``."""
    lm, _ = _check_landmarks(landmarks_2d)  # the single-face messages before the batch's
    lw = None
    if landmark_weights is not None:
        lw = np.asarray(landmark_weights, np.float64)
        if lw.shape != (68,):
            raise ValueError("landmark_weights must be (68,) finite and >= 0")
        lw = lw[None]
    shapes = None if shape is None else np.asarray(shape)[None]
    if terms is not None:  # a term's per-face data gets the batch axis of one
        terms = tuple(
            dataclasses.replace(t, data=jax.tree_util.tree_map(lambda a: np.asarray(a)[None], t.data))
            if isinstance(t, Term) and t.data is not None else t
            for t in terms
        )
    return lm[None], shapes, terms, lw


def _first(res: FitResult) -> FitResult:
    """The result of the first (only) face: the leading batch axis removed from every array."""
    fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
    fields["params"] = jax.tree_util.tree_map(lambda a: a[0, ...], res.params)
    fields["energy_terms"] = {k: v[0, ...] for k, v in res.energy_terms.items()}
    for k in fields:
        if k not in ("params", "energy_terms"):
            fields[k] = fields[k][0, ...]
    return FitResult(**fields)


def fit_batch(
    model: HeadModel,
    landmarks_2d,
    image_size,
    shapes=None,
    config: FitConfig = FitConfig(),
    *,
    terms=None,
    landmark_weights=None,
    problem: FitProblem | None = None,
) -> FitResult:
    """:func:`fit` for ``B`` faces of one topology in one vmapped solve.

    Args:
      landmarks_2d: ``(B, 68, 2)``; image_size: ``(h, w)`` shared by all faces;
      shapes: optional ``(B, V, 3)`` regressed shapes; landmark_weights: optional ``(68,)`` or ``(B, 68)``.
      terms: as :func:`fit`; every leaf of a term's ``data`` has the leading axis ``B``.  New data
        of the same shapes (and the same term functions) reuse the compiled solve.
      Others as :func:`fit`.

    Returns:
      :class:`FitResult` whose arrays have a leading batch axis ``B``.
    """
    st = _setup(model, landmarks_2d, image_size, shapes, config, terms, landmark_weights, problem)
    with jax.enable_x64(True):
        out = _run(st.data, st.v0, st.weights, st.full, st.statics, batched=st.batch > 1, corrective=st.corrective)
        out = jax.device_get(out)
    if st.batch == 1:
        out = {k: np.asarray(v)[None] for k, v in out.items()}
    return _result(out, st.terms, st.image_size, st.landmarks, np.all(np.isfinite(st.landmarks), axis=2))


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What the jitted solve of :func:`fit_batch` takes (float64 device arrays; see :func:`_setup`)."""

    data: FitData
    v0: object
    weights: jax.Array
    full: tuple
    statics: dict
    batch: int
    corrective: bool
    terms: tuple
    image_size: tuple
    landmarks: np.ndarray


def _setup(model, landmarks_2d, image_size, shapes, config, terms, landmark_weights, problem) -> _Setup:
    """Check :func:`fit_batch`'s arguments and build the solve's data, initial variables (EPnP) and
    static settings; a batch of one has no batch axis (the single-face kernel)."""
    terms = _terms_static(terms, config)
    corrective = uses_corrective(terms)
    problem = prepare(model, config, corrective=corrective) if problem is None else problem
    if corrective and problem.corrective is None:
        raise ValueError("the corrective term needs a problem prepared with the corrective condensation: prepare(model, config, corrective=True)")
    hw = _check_image_size(image_size)
    lm = np.asarray(landmarks_2d, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2) or lm.shape[0] < 1:
        raise ValueError(f"landmarks_2d must have shape (B, 68, 2), got {lm.shape}")
    b = lm.shape[0]
    if shapes is not None and np.shape(shapes)[0] != b:
        raise ValueError(f"shapes must have shape ({b}, V, 3), got {np.shape(shapes)}")
    lw = None if landmark_weights is None else np.broadcast_to(np.asarray(landmark_weights, np.float64), (b, 68))
    term_data, term_constants = _term_inputs(terms, b)
    if b == 1:
        term_data = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], term_data)
    with jax.enable_x64(True):
        faces = [
            _face_inputs(model, problem, config, lm[i], hw, None if shapes is None else shapes[i], None if lw is None else lw[i])
            for i in range(b)
        ]
        if b == 1:  # one face: the single-face kernel (no vmapped axis of size one), same results
            per_face, v0, base = faces[0]
        else:
            per_face = {k: np.stack([f[0][k] for f in faces]) for k in faces[0][0]}
            v0 = jax.tree_util.tree_map(lambda *a: np.stack(a), *[f[1] for f in faces])
            base = np.stack([f[2] for f in faces]) if shapes is not None else faces[0][2]
        m = problem.expression_h.shape[0]
        shared = _shared_data(problem, config, m)
        data = _to_f64(FitData(**per_face, **shared, term_data=term_data, term_constants=term_constants))
        weights = jnp.asarray([t.weight for t in terms], jnp.float64)
        return _Setup(data, _to_f64(v0), weights, _full_arrays(problem, base), _statics(config, terms), b, corrective,
                      terms, hw, lm)


# ----------------------------------------------------------------------------------------- stepping
@dataclasses.dataclass(frozen=True)
class FitStepper:
    """One face's fit as ``init / step / terminate / result`` (from :func:`fit_stepper`): the same
    solve as :func:`fit`, one Gauss-Newton iteration per :meth:`step`, so every iterate can be
    inspected and a stopping rule of your own added.  Steps run compiled in float64 (inside
    ``jax.enable_x64``; the user's global setting is untouched).

    The state is a :class:`~digitaltwin_jax.solvers.gauss_newton.GaussNewtonState`:
    ``state.x`` the :class:`~digitaltwin_jax.fitting.variables.FitVariables` (beta, alpha, t, q,
    f_s, the 68 sampled corrective offsets), ``state.args`` the
    :class:`~digitaltwin_jax.fitting.variables.FitData` after the last re-linearisation (slid jaw
    samples), ``state.energy`` and ``state.energies`` the energy before each step taken,
    ``state.iteration``.
    """

    setup: _Setup

    @property
    def num_iterations(self) -> int:
        """The iteration budget (``FitConfig.num_iterations``) that :meth:`terminate` enforces."""
        return int(self.setup.statics["gn"].num_iterations)

    def init(self) -> GaussNewtonState:
        """The state before the first step (EPnP pose, zero expression and offsets)."""
        st = self.setup
        with jax.enable_x64(True):
            return _init_state(st.data, st.v0, st.weights, **st.statics)

    def step(self, state: GaussNewtonState) -> GaussNewtonState:
        """One iteration: re-linearise (sliding contour, corrective), solve, backtrack."""
        with jax.enable_x64(True):
            return _step_state(state, **self.setup.statics)

    def terminate(self, state: GaussNewtonState) -> bool:
        """Whether the iteration budget is spent."""
        return int(state.iteration) >= self.num_iterations

    def result(self, state: GaussNewtonState) -> FitResult:
        """The :class:`FitResult` at ``state`` (full mesh, projected landmarks, energies so far)."""
        st = self.setup
        with jax.enable_x64(True):
            v, last, info = _finish_state(state, **st.statics)
            out = _outputs_jit(v, last, st.data.corrective, st.full, fit_corrective=st.corrective)
            out = jax.device_get({**out, **info})
        out = {k: np.asarray(a)[None] for k, a in out.items()}
        return _first(_result(out, st.terms, st.image_size, st.landmarks, np.all(np.isfinite(st.landmarks), axis=2)))


# fit_stepper repeats fit's signature on purpose: it is fit, run step by step
def fit_stepper(
    model: HeadModel,
    landmarks_2d,
    image_size,
    shape=None,
    config: FitConfig = FitConfig(),
    *,
    terms=None,
    landmark_weights=None,
    problem: FitProblem | None = None,
) -> FitStepper:
    """The fit of one face, to run step by step; the arguments are :func:`fit`'s.

    ``stepper = fit_stepper(model, landmarks_2d, (h, w))``, ``state = stepper.init()``, then
    ``while not stepper.terminate(state): state = stepper.step(state)`` and ``stepper.result(state)``
    (the same :class:`FitResult` as :func:`fit` after the same number of steps).
    """
    lm, shapes, terms, lw = _batch_of_one(landmarks_2d, shape, terms, landmark_weights)
    return FitStepper(_setup(model, lm, image_size, shapes, config, terms, lw, problem))
