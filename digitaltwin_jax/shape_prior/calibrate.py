"""Empirical Bayes: the identity prior that makes real photos' landmarks most probable.

For photo ``i`` with landmark information ``(P_i, b_i, Q_i, n_i)`` (:mod:`.evidence`), the regressor's
deviation from the ICT mean in identity coefficients ``d_i (K,)`` and the embedding's Mahalanobis
distance ``m_i`` from the training renders (:mod:`digitaltwin_jax.regressor.guard`), the identity
prior is

    alpha_i ~ N(c + tau(m_i) d_i, sigma^2(m_i) I),
    tau(m) = tau_0 + tau_1 (m - m_0) / m_s,     log sigma^2(m) = s_0 + s_1 (m - m_0) / m_s,

with ``c (K,)`` the template correction shared by everyone (the "template for real people"),
``tau`` the trusted fraction of the regressor and ``sigma`` the width of what the landmarks may still
move.  :func:`calibrate` maximises the summed log evidence (:func:`.evidence.log_evidence`) over
``c``, ``tau``, ``sigma`` and the landmark-noise scale ``kappa`` with L-BFGS (gradients by JAX),
with the hyper-prior ``c ~ N(0, I)`` (ICT's coefficients are N(0, 1): a correction is a person-sized
shift at most).  Any of the parts can be held fixed (``fit_template=False``: the ICT mean;
``fit_trust=False``: tau = 0; ``identity=False``: sigma -> 0, no identity fit), which gives the
nested models the benchmark compares on held-out photos (:func:`heldout_log_evidence`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from digitaltwin_jax.shape_prior.evidence import log_evidence_eig, log_evidence_fixed

__all__ = ["EvidenceSet", "PriorRule", "calibrate", "mean_identity", "photo_log_evidence", "heldout_log_evidence"]


@dataclasses.dataclass(frozen=True)
class EvidenceSet:
    """Stacked :class:`~.evidence.PhotoEvidence` of N photos with their regressor deviations.

    Attributes:
      P: ``(N, K, K)``; b: ``(N, K)``; q0: ``(N,)``; dof: ``(N,)`` (float64).
      deviation: ``(N, K)`` the regressor's prediction minus the ICT mean, in identity coefficients.
      distance: ``(N,)`` Mahalanobis distance of each photo's embedding from the training renders.
    """

    P: np.ndarray
    b: np.ndarray
    q0: np.ndarray
    dof: np.ndarray
    deviation: np.ndarray
    distance: np.ndarray

    def subset(self, mask) -> "EvidenceSet":
        return EvidenceSet(*(np.asarray(getattr(self, f.name))[mask] for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return int(self.b.shape[0])


@dataclasses.dataclass(frozen=True)
class PriorRule:
    """The calibrated identity prior (module docstring); one rule, one place.

    Attributes:
      template: ``(K,) float64`` template correction ``c`` (zeros: the ICT mean).
      tau: ``(2,)`` ``(tau_0, tau_1)``; log_sigma2: ``(2,)`` ``(s_0, s_1)``; identity: False = sigma -> 0.
      log_kappa2: landmark-noise variance (percent of the eye distance squared, log).
      m0, m_scale: centre and scale of the distance axis (the calibration photos' median and IQR).
    """

    template: np.ndarray
    tau: np.ndarray
    log_sigma2: np.ndarray
    log_kappa2: float
    m0: float
    m_scale: float
    identity: bool = True

    def trust(self, distance, floor=0.0) -> np.ndarray:
        """``max(floor, tau(m))`` clipped to [0, 1]: the regressor's trusted fraction at embedding
        distance ``m``.  ``floor`` is the trust renders with known heads justify there (the guard's
        factor, :mod:`digitaltwin_jax.regressor.guard`): near the training renders the renders decide,
        far from them (every real photo measured) the real photos' calibration does."""
        x = (np.asarray(distance, np.float64) - self.m0) / self.m_scale
        return np.clip(np.maximum(self.tau[0] + self.tau[1] * x, np.asarray(floor, np.float64)), 0.0, 1.0)

    def sigma(self, distance) -> np.ndarray:
        """Prior standard deviation of the identity coefficients at distance ``m`` (0 without identity fit)."""
        if not self.identity:
            return np.zeros_like(np.asarray(distance, np.float64))
        x = (np.asarray(distance, np.float64) - self.m0) / self.m_scale
        return np.exp(0.5 * (self.log_sigma2[0] + self.log_sigma2[1] * x))

    @property
    def kappa(self) -> float:
        return float(np.exp(0.5 * self.log_kappa2))

    def mean(self, deviation, distance) -> np.ndarray:
        """``(..., K)`` prior mean ``c + tau(m) d``."""
        return self.template + self.trust(distance)[..., None] * np.asarray(deviation, np.float64)

    def to_json(self) -> dict:
        return {"template": [float(x) for x in self.template], "tau": [float(x) for x in self.tau],
                "log_sigma2": [float(x) for x in self.log_sigma2], "log_kappa2": float(self.log_kappa2),
                "m0": float(self.m0), "m_scale": float(self.m_scale), "identity": bool(self.identity)}

    @classmethod
    def from_json(cls, d: dict) -> "PriorRule":
        return cls(np.asarray(d["template"], np.float64), np.asarray(d["tau"], np.float64),
                   np.asarray(d["log_sigma2"], np.float64), float(d["log_kappa2"]), float(d["m0"]),
                   float(d["m_scale"]), bool(d.get("identity", True)))


def _unpack(x, k, fit_template, fit_trust, trust_slope, sigma_slope, identity, fixed, strength):
    i = 0
    c = x[i:i + k] if fit_template else fixed
    i += k if fit_template else 0
    tau0 = x[i] if fit_trust else 0.0
    i += 1 if fit_trust else 0
    tau1 = x[i] if (fit_trust and trust_slope) else 0.0
    i += 1 if (fit_trust and trust_slope) else 0
    free_sigma = identity and strength is None
    s0 = x[i] if free_sigma else -30.0
    i += 1 if free_sigma else 0
    s1 = x[i] if (free_sigma and sigma_slope) else 0.0
    i += 1 if (free_sigma and sigma_slope) else 0
    if identity and strength is not None:  # the fit's own width: sigma^2 = kappa^2 / strength
        s0 = x[i] - jnp.log(strength)
    return c, jnp.stack([jnp.asarray(tau0, x.dtype), jnp.asarray(tau1, x.dtype)]), \
        jnp.stack([jnp.asarray(s0, x.dtype), jnp.asarray(s1, x.dtype)]), x[i]


def _per_photo(c, tau, s, lk2, ev, x_m, identity):
    """``(N,)`` log evidence of every photo under the prior (c, tau, s, kappa)."""
    mu = c[None] + (tau[0] + tau[1] * x_m)[:, None] * ev["deviation"]
    if identity:
        ls2 = s[0] + s[1] * x_m
        return jax.vmap(log_evidence_eig, in_axes=(0, 0, 0, 0, 0, 0, 0, None))(
            ev["lam"], ev["U"], ev["b"], ev["q0"], ev["dof"], mu, ls2, lk2)
    return jax.vmap(log_evidence_fixed, in_axes=(0, 0, 0, 0, 0, None))(ev["P"], ev["b"], ev["q0"], ev["dof"], mu, lk2)


def calibrate(evidence: EvidenceSet, *, fit_template: bool = True, fit_trust: bool = True, identity: bool = True,
              trust_slope: bool = True, sigma_slope: bool = True, template_prior: float = 1.0,
              template=None, identity_strength: float | None = None, m0: float | None = None,
              m_scale: float | None = None) -> tuple[PriorRule, dict]:
    """Maximise the summed log evidence of ``evidence`` over the prior's parts (module docstring).

    Args:
      evidence: the calibration photos.
      fit_template / fit_trust / identity: which parts are free (the rest as in the ICT/template default).
      trust_slope / sigma_slope: let tau / log sigma^2 vary linearly with the distance.
      template_prior: precision of the hyper-prior ``c ~ N(0, I / template_prior)``.
      template: ``(K,)`` the template ``c`` when it is not fitted (default zeros: the ICT mean), e.g.
        :func:`mean_identity`.
      identity_strength: fix the identity prior's width to the fit's own, ``sigma^2 = kappa^2 /
        strength`` (``strength = omega_r lambda_identity``) instead of estimating it.
      m0, m_scale: the distance axis (default: the photos' median and inter-quartile range).

    Returns:
      ``(rule, info)``: info holds the summed log evidence, its per-photo mean, the optimiser's
      message and iteration count.
    """
    n, k = evidence.b.shape
    if n < 2:
        raise ValueError(f"need at least 2 photos to calibrate, got {n}")
    d = np.asarray(evidence.distance, np.float64)
    m0 = float(np.median(d)) if m0 is None else float(m0)
    iqr = float(np.subtract(*np.percentile(d, [75, 25])))
    m_scale = (iqr if iqr > 1e-9 else 1.0) if m_scale is None else float(m_scale)
    x0 = []
    if fit_template:
        x0 += [0.0] * k
    if fit_trust:
        x0 += [0.2] + ([0.0] if trust_slope else [])
    if identity and identity_strength is None:
        x0 += [0.0] + ([0.0] if sigma_slope else [])
    x0 += [np.log(np.mean(evidence.q0 / np.maximum(evidence.dof, 1)))]
    fixed = np.zeros(k) if template is None else np.asarray(template, np.float64)
    if fixed.shape != (k,):
        raise ValueError(f"template must be ({k},), got {fixed.shape}")

    with jax.enable_x64(True):
        flags = (k, fit_template, fit_trust, trust_slope, sigma_slope, identity, jnp.asarray(fixed),
                 None if identity_strength is None else float(identity_strength))
        ev = _device(evidence)
        x_m = jnp.asarray((d - m0) / m_scale)

        def objective(x):
            c, tau, s, lk2 = _unpack(x, *flags)
            total = jnp.sum(_per_photo(c, tau, s, lk2, ev, x_m, identity))
            return -(total - 0.5 * template_prior * c @ c) / n

        vg = jax.jit(jax.value_and_grad(objective))

        def fun(x):
            v, g = vg(jnp.asarray(x))
            return float(v), np.asarray(g, np.float64)

        res = minimize(fun, np.asarray(x0, np.float64), jac=True, method="L-BFGS-B",
                       options={"maxiter": 2000, "maxfun": 4000})
        c, tau, s, lk2 = (np.asarray(a, np.float64) for a in _unpack(jnp.asarray(res.x), *flags))
    rule = PriorRule(c, tau, s, float(lk2), m0, m_scale, identity)
    per = photo_log_evidence(rule, evidence)
    return rule, {"log_evidence_sum": float(per.sum()), "log_evidence_mean": float(per.mean()),
                  "converged": bool(res.success), "message": str(res.message), "iterations": int(res.nit)}


def mean_identity(evidence: EvidenceSet, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template for real people: the mean of the photos' fitted identities (item 1 of issue 27).

    Each photo's identity is the minimiser of its linearised landmark energy plus the fit's identity
    prior, ``alpha_i = (P_i + strength I)^-1 b_i`` (fit units: ``strength = omega_r lambda_identity``);
    the template is their mean over the photos (one per person).

    Returns:
      ``(mean (K,), standard error (K,), per-photo identities (N, K))``.
    """
    P = np.asarray(evidence.P, np.float64)
    a = np.linalg.solve(P + float(strength) * np.eye(P.shape[1])[None], np.asarray(evidence.b, np.float64)[..., None])[..., 0]
    n = a.shape[0]
    return a.mean(0), a.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.full(a.shape[1], np.nan), a


def photo_log_evidence(rule: PriorRule, evidence: EvidenceSet) -> np.ndarray:
    """``(N,)`` log evidence of each photo under ``rule`` (tau and sigma as the rule defines them,
    the trust clipped to [0, 1] as it is applied)."""
    d = np.asarray(evidence.distance, np.float64)
    with jax.enable_x64(True):
        ev = _device(evidence)
        mu = jnp.asarray(rule.mean(evidence.deviation, d))
        if rule.identity:
            ls2 = jnp.asarray(2.0 * np.log(rule.sigma(d)))
            out = jax.vmap(log_evidence_eig, in_axes=(0, 0, 0, 0, 0, 0, 0, None))(
                ev["lam"], ev["U"], ev["b"], ev["q0"], ev["dof"], mu, ls2, rule.log_kappa2)
        else:
            out = jax.vmap(log_evidence_fixed, in_axes=(0, 0, 0, 0, 0, None))(
                ev["P"], ev["b"], ev["q0"], ev["dof"], mu, rule.log_kappa2)
    return np.asarray(out, np.float64)


def _device(evidence: EvidenceSet) -> dict:
    """float64 device arrays of ``evidence`` plus each ``P``'s eigendecomposition (``lam``, ``U``)."""
    lam, U = np.linalg.eigh(np.asarray(evidence.P, np.float64))
    out = {f: jnp.asarray(getattr(evidence, f), jnp.float64) for f in ("P", "b", "q0", "dof", "deviation")}
    out["lam"], out["U"] = jnp.asarray(lam), jnp.asarray(U)
    return out


def heldout_log_evidence(rule: PriorRule, evidence: EvidenceSet) -> dict:
    """Mean per-photo log evidence of held-out photos under ``rule``, with its standard error."""
    per = photo_log_evidence(rule, evidence)
    return {"mean": float(per.mean()), "se": float(per.std(ddof=1) / np.sqrt(per.size)) if per.size > 1 else float("nan"),
            "n": int(per.size)}
