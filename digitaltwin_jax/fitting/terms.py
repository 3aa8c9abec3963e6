"""Energy terms (paper eq. 4): :class:`Term`, :func:`default_terms` and the prior terms.

A term is ``weight * ||fn(v, data)||^2`` with ``fn(v: FitVariables, data: FitData) -> (R,)``.  The
landmark term (eq. 1, with its closed-form normal-equation blocks and the sliding contour) and the
corrective term (eq. 2, deltaP eliminated) live beside their residuals in
:mod:`digitaltwin_jax.energies.landmarks` / :mod:`digitaltwin_jax.energies.corrective`; the priors
(eq. 3) are thin wrappers of :mod:`digitaltwin_jax.energies.priors`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax

from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.energies import priors
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.variables import FitData, FitVariables

__all__ = [
    "Term", "default_terms", "landmark_term", "corrective_term", "landmark_points", "landmark_pixels",
    "expression_prior_term", "focal_prior_term", "rotation_prior_term", "identity_prior_term", "quaternion_gauge_term",
]


@dataclasses.dataclass(frozen=True)
class Term:
    """One energy term: ``weight * ||fn(v, data)||^2`` (fn: module-level function, so jit caches)."""

    name: str
    fn: Callable[[FitVariables, FitData], jax.Array]
    weight: float = 1.0

landmark_points = lmk.landmark_points
landmark_pixels = lmk.landmark_pixels

landmark_term = lmk.LandmarkTerm()
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
    """The paper's energy (eq. 4) as terms, weights from ``config``; drop/replace/add freely."""
    terms = [Term("landmarks", landmark_term, 1.0)]
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

