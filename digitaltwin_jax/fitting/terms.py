"""Energy terms (paper eq. 4): :class:`Term`, :func:`default_terms` and the prior terms.

A term is ``weight * ||fn(...)||^2``; everything a term needs is declared by the term itself, so a
new term (a user's experiment) never needs an edit of the package:

* its residual: ``fn(v: FitVariables, data: FitData) -> (R,)``, or ``fn(v, data, own: TermInputs)``
  when the :class:`Term` carries its own inputs: ``data`` (a per-face pytree, batched by
  :func:`~digitaltwin_jax.fitting.fit_batch` with a leading axis ``B``) and/or ``constants`` (one
  pytree shared by the batch).  The inputs are traced arrays, so new values of the same shapes reuse
  the compiled solve; ``fn`` itself is part of the compilation key (use one function object, not a
  new closure per call);
* optionally, on ``fn``: ``normal_equations(v, data)`` closed-form Gauss-Newton blocks
  (:class:`~digitaltwin_jax.solvers.gauss_newton.StructuredResidual`);
  ``unknowns`` the :class:`FitVariables` leaves it brings into the problem (a leaf is free only when
  an active term declares it and the configuration does not fix it: drop the ``"corrective"`` term
  and deltaP is no longer an unknown); ``per_topology`` the constants of :func:`prepare` it needs;
  and re-linearisation hooks ``(v, data, it) -> (v, data)`` run before every iteration in three
  phases over all terms: ``recover`` (eliminated unknowns back at the current point), ``relinearize``
  (move the linearisation point: the sliding contour), ``recondense`` (eliminate again there).

The landmark term (eq. 1, with its closed-form blocks and the sliding contour) and the corrective
term (eq. 2, deltaP eliminated) live beside their residuals in
:mod:`digitaltwin_jax.energies.landmarks` / :mod:`digitaltwin_jax.energies.corrective`; the priors
(eq. 3) are thin wrappers of :mod:`digitaltwin_jax.energies.priors`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.energies import priors
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.variables import FitData, FitVariables, TermInputs

__all__ = [
    "Term", "default_terms", "landmark_term", "corrective_term", "landmark_points", "landmark_pixels",
    "expression_prior_term", "focal_prior_term", "rotation_prior_term", "identity_prior_term", "quaternion_gauge_term",
    "HOOK_PHASES", "term_unknowns", "term_per_topology",
]

HOOK_PHASES = ("recover", "relinearize", "recondense")


@dataclasses.dataclass(frozen=True, eq=False)
class Term:
    """One energy term: ``weight * ||fn(v, data)||^2``, or ``||fn(v, data, own)||^2`` with inputs.

    Attributes:
      name: unique within a fit; ``FitResult.energy_terms`` is keyed by it.
      fn: the residual (a module-level function or a hashable object, so the compiled solve is reused).
      weight: >= 0 (traced: re-weighting never recompiles).
      data: optional per-face pytree; arrays with a leading batch axis ``B`` in ``fit_batch``, without
        it in ``fit``; ``fn`` gets it as ``own.face``.
      constants: optional pytree shared by every face of the batch; ``fn`` gets it as ``own.shared``.
      unknowns: the variables this term brings in; default ``fn.unknowns`` (or none).
    """

    name: str
    fn: Callable
    weight: float = 1.0
    data: Any = None
    constants: Any = None
    unknowns: tuple[str, ...] | None = None

    @property
    def has_inputs(self) -> bool:
        return self.data is not None or self.constants is not None


def term_unknowns(term: Term) -> tuple[str, ...]:
    """The variables ``term`` brings into the problem (``Term.unknowns``, else ``fn.unknowns``)."""
    return tuple(term.unknowns if term.unknowns is not None else getattr(term.fn, "unknowns", ()))


def term_per_topology(term: Term) -> tuple[str, ...]:
    """The per-topology constants of :func:`~digitaltwin_jax.fitting.prepare` that ``term`` needs."""
    return tuple(getattr(term.fn, "per_topology", ()))


@dataclasses.dataclass(frozen=True)
class BoundTerm:
    """What the solver sees of a :class:`Term`: its function with the term's own inputs looked up in
    ``data`` by name (hashable by ``(name, fn, own)``: the compilation key, data excluded)."""

    name: str
    fn: Callable
    own: bool

    def _own(self, data: FitData) -> TermInputs:
        return TermInputs(face=data.term_data.get(self.name), shared=data.term_constants.get(self.name))

    def __call__(self, v, data):
        return self.fn(v, data, self._own(data)) if self.own else self.fn(v, data)

    def hook(self, phase: str):
        """The term's re-linearisation hook of ``phase`` (one of :data:`HOOK_PHASES`) or None."""
        return getattr(self.fn, phase, None)


@dataclasses.dataclass(frozen=True)
class BoundStructuredTerm(BoundTerm):
    """A :class:`BoundTerm` whose function supplies its normal-equation blocks."""

    def normal_equations(self, v, data):
        if self.own:
            return self.fn.normal_equations(v, data, self._own(data))
        return self.fn.normal_equations(v, data)


def bind(term: Term) -> BoundTerm:
    cls = BoundStructuredTerm if hasattr(term.fn, "normal_equations") else BoundTerm
    return cls(term.name, term.fn, term.has_inputs)


landmark_points = lmk.landmark_points
landmark_pixels = lmk.landmark_pixels

landmark_term = lmk.LandmarkTerm()  # default sliding contour, no hysteresis (default_terms uses the config's)
corrective_term = corr.CorrectiveTerm()


def expression_prior_term(v: FitVariables, data: FitData):
    """sum beta_i^2 / sigma_i^2 (eq. 3): ``(M,)``."""
    return priors.expression_prior_residual(v.beta, data.expression_sigma)


def focal_prior_term(v: FitVariables, data: FitData):
    """log^2 f_s (eq. 3): ``(1,)``."""
    return priors.focal_prior_residual(v.f_s)


def rotation_prior_term(v: FitVariables, data: FitData):
    """Deviation of q from the initial pose (eq. 3): ``(3,)``."""
    return priors.rotation_prior_residual(v.q, data.q0)


def identity_prior_term(v: FitVariables, data: FitData):
    """||alpha||^2 (our extension): ``(K,)``."""
    return priors.identity_prior_residual(v.alpha)


def quaternion_gauge_term(v: FitVariables, data: FitData):
    """|q|^2 - 1: fixes the free scale of q (no effect on the pose)."""
    return priors.quaternion_norm_residual(v.q)


def default_terms(config: FitConfig = FitConfig()) -> tuple[Term, ...]:
    """The paper's energy (eq. 4) as terms, weights from ``config``; drop/replace/add freely.

    ``config.fit_corrective=False`` (deprecated) leaves out the ``"corrective"`` term; dropping the
    term by name does the same.
    """
    landmarks = lmk.LandmarkTerm(sliding=config.sliding_contour, hysteresis=float(config.contour_hysteresis))
    terms = [Term("landmarks", landmarks, 1.0)]
    if config.fit_corrective:
        terms.append(Term("corrective", corrective_term, config.omega_c))
    if config.fit_expression:
        terms.append(Term("expression_prior", expression_prior_term, config.omega_r))
    if config.fit_focal:
        terms.append(Term("focal_prior", focal_prior_term, config.omega_r * config.lambda_f))
    terms.append(Term("rotation_prior", rotation_prior_term, config.omega_r * config.lambda_q))
    if config.fit_identity and config.num_identity > 0:
        terms.append(Term("identity_prior", identity_prior_term, config.omega_r * config.lambda_identity))
    terms.append(Term("quaternion_gauge", quaternion_gauge_term, 1.0))
    return tuple(terms)

