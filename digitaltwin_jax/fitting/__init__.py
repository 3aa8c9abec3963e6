"""Non-rigid fitting of the head model to 68 image landmarks (paper section 3.4, eq. 1-4).

Composes the camera (:mod:`digitaltwin_jax.camera`), the energies
(:mod:`digitaltwin_jax.energies`) and the solver (:mod:`digitaltwin_jax.solvers.gauss_newton`);
no new maths here beyond the bookkeeping of the structured problem.

Model:  ``P_F = P + sum_k alpha_k I_k + sum_i beta_i B_i + deltaP``, ``p_cam = R(q) p + t``,
``K = [[f_s f, 0, w/2], [0, f_s f, h/2], [0, 0, 1]]`` with ``f = max(h, w)`` (the paper's text swaps h
and w in c_x, c_y; we use the correct assignment).  P is the regressed shape (``shape=``) or the
model's mean head; the identity coefficients alpha (N(0, 1), our extension) are optimised only with
``FitConfig(fit_identity=True)``.

Energy (eq. 4):  ``E = sum_k weight_k ||r_k||^2`` over a tuple of :class:`Term` s; the defaults
(:func:`default_terms`) are E_l (eq. 1), omega_c E_c (eq. 2) and omega_r E_r (eq. 3, split into its
parts, plus the identity prior).  A term declares what it needs (:mod:`~digitaltwin_jax.fitting.terms`):
its residual ``fn(v: FitVariables, data: FitData[, own: TermInputs]) -> (R,)``, its own per-face
data (batched by :func:`fit_batch`) and constants, the unknowns it brings in (so dropping the
``"corrective"`` term removes deltaP from the problem), optional closed-form normal-equation blocks
and re-linearisation hooks.  Add, drop or re-weight terms by passing ``terms=`` to :func:`fit` - the
package is untouched (``experiments/landmark3d_term.py``, ``symmetry_prior.py``, ``drop_term.py``).

Structure.  The corrective field deltaP (``3 V`` unknowns) enters the landmark term only at the
68 sampled landmark points and E_c only through a constant sparse Laplacian, so it is eliminated
exactly (:mod:`digitaltwin_jax.energies.corrective`): the solver's unknowns are
:class:`FitVariables` = (beta, alpha, t, q, f_s, the 68 x 3 sampled offsets), a few hundred numbers,
and every Gauss-Newton step is a small dense float64 solve.  The full field is recovered at the end.
The solve runs in float64 inside ``jax.enable_x64(True)`` (a context manager: the user's global

Modules (one concept each): :mod:`~digitaltwin_jax.fitting.config` (:class:`FitConfig`),
:mod:`~digitaltwin_jax.fitting.variables` (the pytrees), :mod:`~digitaltwin_jax.fitting.problem`
(per-topology constants and per-face data), :mod:`~digitaltwin_jax.fitting.init` (EPnP),
:mod:`~digitaltwin_jax.fitting.terms` (:class:`Term`, the defaults), :mod:`~digitaltwin_jax.fitting.solve`
(the jitted run) and :mod:`~digitaltwin_jax.fitting.api` (:func:`fit`, :func:`fit_batch`, and
:func:`fit_stepper` to run one face's solve iteration by iteration).
"""
from __future__ import annotations

from digitaltwin_jax.fitting.api import FitStepper, fit, fit_batch, fit_stepper
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.init import initial_pose
from digitaltwin_jax.fitting.problem import _PROBLEM_CACHE, FitProblem, _face_inputs, _shared_data, prepare
from digitaltwin_jax.fitting.solve import _relinearize, _to_f64, free_variables
from digitaltwin_jax.fitting.terms import (
    Term,
    corrective_term,
    default_terms,
    expression_prior_term,
    focal_prior_term,
    identity_prior_term,
    landmark_pixels,
    landmark_points,
    landmark_term,
    quaternion_gauge_term,
    rotation_prior_term,
)
from digitaltwin_jax.fitting.variables import FitData, FitParams, FitResult, FitVariables, TermInputs

__all__ = [
    "FitConfig",
    "FitVariables",
    "FitData",
    "FitParams",
    "FitResult",
    "FitProblem",
    "Term",
    "TermInputs",
    "default_terms",
    "free_variables",
    "landmark_points",
    "landmark_pixels",
    "prepare",
    "initial_pose",
    "fit",
    "fit_batch",
    "FitStepper",
    "fit_stepper",
]
