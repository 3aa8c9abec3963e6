"""The identity prior of the avatar's fit (issue 27): where the head starts and how far landmarks move it.

    centre = mean + B (c + tau(m) d),     alpha ~ N(0, sigma(m)^2 I) around the centre,

* ``c`` a *template* named in the calibration: ``"ict"`` (zeros, the ICT-FaceKit mean head),
  ``"pipeline"`` (the mean identity of real people as our model and detector see them, the detector's
  annotation convention included) or ``"people"`` (the same with the detector's offsets measured on
  renders taken out: the people's part only);
* ``d`` the regressor's deviation from the ICT mean in identity coefficients (:func:`identity_coefficients`),
  ``m`` the embedding's Mahalanobis distance from the training renders, ``tau(m)`` the trusted fraction
  (the larger of the real photos' calibration and the guard's factor calibrated on renders);
* ``sigma(m) (1 - g)`` the width the landmarks may move the head (the fit's identity prior,
  ``omega_r lambda_identity = kappa^2 / sigma^2``), shrunk by the guard's factor ``g`` where renders
  vouch for the regressor (``g = 1``: today's guarded start, no identity fit).

All of it comes from one file, ``digitaltwin_jax/assets/shape_prior.json``, written by
``experiments/calibrate_prior.py`` from real photos' landmarks by empirical Bayes
(:mod:`.calibrate`), with its provenance.  :class:`IdentityPrior` is what the fit receives.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from digitaltwin_jax.shape_prior.calibrate import PriorRule

__all__ = ["TEMPLATES", "IdentityPrior", "ShapePrior", "identity_coefficients", "identity_projector", "load_shape_prior",
           "save_shape_prior", "SHAPE_PRIOR_FILE"]

SHAPE_PRIOR_FILE = "shape_prior.json"
TEMPLATES = ("ict", "pipeline", "people")


def identity_projector(model, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (3V,), solve (K, 3V)) float64`` with ``solve @ (v - mean)`` the least-squares identity
    coefficients of a head ``v`` (see :func:`identity_coefficients`); compute once per model and reuse."""
    b = np.asarray(model.identity_basis, np.float64).reshape(model.num_identity, -1)
    gram = b @ b.T + ridge * np.eye(b.shape[0])
    return np.asarray(model.vertices, np.float64).reshape(-1), np.linalg.solve(gram, b)


def identity_coefficients(model, vertices, ridge: float = 1e-3, projector=None) -> np.ndarray:
    """``(K,) float64`` least-squares identity coefficients of ``vertices (V, 3)`` relative to the
    model's mean head: ``argmin_a ||mean + B a - vertices||^2 + ridge ||a||^2``.

    ``projector``: :func:`identity_projector` of ``model`` (computed here when None)."""
    mean, solve = identity_projector(model, ridge) if projector is None else projector
    return solve @ (np.asarray(vertices, np.float64).reshape(-1) - mean)


@dataclasses.dataclass(frozen=True, eq=False)
class IdentityPrior:
    """What the fit receives instead of a fixed start shape: identity fitted around a centre.

    Attributes:
      centre: ``(V, 3) float32`` prior mean head (mm, head frame).
      sigma: prior standard deviation of the N(0, 1)-scaled identity coefficients around the centre
        (0: the identity is not fitted, the centre is kept).
      kappa: landmark noise (percent of the eye distance) the width was calibrated with.
      landmark_weights: ``(68,) float64`` per-landmark weights (inverse relative detector noise), or None.
      info: what the report shows (trust, distance, template, sigma).
    """

    centre: np.ndarray
    sigma: float
    kappa: float
    landmark_weights: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def lambda_identity(self) -> float:
        """The fit's ``omega_r * lambda_identity`` for this prior: ``kappa^2 / sigma^2`` (inf when sigma = 0)."""
        return float("inf") if self.sigma <= 0 else (self.kappa / self.sigma) ** 2

    def fit_config(self, config):
        """``config`` (a :class:`~digitaltwin_jax.fitting.FitConfig`) with this prior's identity fit: on
        when the width is positive, ``omega_r * lambda_identity = kappa^2 / sigma^2``."""
        if not self.sigma > 0:
            return dataclasses.replace(config, fit_identity=False)
        return dataclasses.replace(config, fit_identity=True, lambda_identity=self.lambda_identity / config.omega_r)


@dataclasses.dataclass(frozen=True)
class ShapePrior:
    """The shipped calibration: one :class:`~.calibrate.PriorRule` per template variant.

    Attributes:
      rules: ``{template name: PriorRule}``; ``"ict"`` is always present (its rule's template is zero).
      default_template: the variant chosen by the held-out evidence.
      noise: ``(68,)`` relative detector noise the rules were calibrated with (None: 1).
      record: provenance (data, seeds, held-out scores).
    """

    rules: dict
    default_template: str
    noise: np.ndarray | None = None
    record: dict = dataclasses.field(default_factory=dict)

    def rule(self, template: str | None = None) -> PriorRule:
        name = self.default_template if template is None else template
        if name not in self.rules:
            raise ValueError(f"unknown template {name!r}; this shape prior has {sorted(self.rules)}")
        return self.rules[name]

    def template_vertices(self, model, template: str | None = None) -> np.ndarray:
        """``(V, 3) float32`` the template head ``mean + B c`` of ``model`` (any resolution sharing the
        identity basis)."""
        c = self.rule(template).template
        k = min(c.shape[0], model.num_identity)
        v = np.asarray(model.vertices, np.float64) + np.tensordot(c[:k], np.asarray(model.identity_basis[:k], np.float64), 1)
        return v.astype(np.float32)

    def landmark_weights(self) -> np.ndarray | None:
        """``(68,)`` inverse relative noise on the inner points (jaw points 1: the fit's jaw weight applies)."""
        if self.noise is None:
            return None
        w = 1.0 / np.asarray(self.noise, np.float64) ** 2
        w[:17] = 1.0
        return w

    def prior(self, model, deviation, distance: float, template: str | None = None,
              trust_floor: float = 0.0) -> IdentityPrior:
        """The :class:`IdentityPrior` of one photo.

        Args:
          model: the head model fitted.
          deviation: ``(K,)`` the regressor's identity coefficients (None: no embedding; trust 0).
          distance: the embedding's Mahalanobis distance (ignored without a deviation).
          template: a name of :data:`TEMPLATES` present in ``rules`` (default: ``default_template``).
          trust_floor: the trust renders justify at this distance (the guard's factor; see
            :meth:`~.calibrate.PriorRule.trust`).
        """
        name = self.default_template if template is None else template
        rule = self.rule(name)
        k = min(rule.template.shape[0], model.num_identity)
        if deviation is None or not np.all(np.isfinite(deviation)) or not np.isfinite(distance):
            trust, sigma, coeffs = 0.0, float(rule.sigma(rule.m0)), rule.template.copy()
        else:
            trust = float(rule.trust(distance, trust_floor))
            # where renders vouch for the regressor (guard factor g), they do not vouch for moving it
            # by the landmarks: on set (b) the identity fit on top of the guarded regressor cost
            # +0.23 mm (experiments/results/prior_armse_b_fit_width.json); the width shrinks to 0 at g = 1
            sigma = float(rule.sigma(distance)) * (1.0 - float(np.clip(trust_floor, 0.0, 1.0)))
            coeffs = rule.template + trust * np.asarray(deviation, np.float64)[:rule.template.shape[0]]
        centre = np.asarray(model.vertices, np.float64) + np.tensordot(coeffs[:k], np.asarray(model.identity_basis[:k], np.float64), 1)
        info = {"template": name, "trust": trust, "identity_sigma": sigma, "landmark_noise_pct": rule.kappa,
                "mahalanobis": None if deviation is None else float(distance),
                "trust_from": "renders (guard)" if deviation is not None and trust_floor > float(rule.trust(distance))
                else "real photos (calibration)"}
        weights = self.landmark_weights() if sigma > 0 else None  # the identity's likelihood, when it is fitted
        return IdentityPrior(centre.astype(np.float32), sigma, rule.kappa, weights, info)

    def to_json(self) -> dict:
        return {"default_template": self.default_template, "rules": {k: r.to_json() for k, r in self.rules.items()},
                "noise": None if self.noise is None else [float(x) for x in self.noise], "record": self.record}

    @classmethod
    def from_json(cls, d: dict) -> "ShapePrior":
        rules = {k: PriorRule.from_json(r) for k, r in d["rules"].items()}
        bad = set(rules) - set(TEMPLATES)
        if bad or d["default_template"] not in rules:
            raise ValueError(f"shape prior: unknown template(s) {sorted(bad)} or default {d['default_template']!r}")
        noise = None if d.get("noise") is None else np.asarray(d["noise"], np.float64)
        return cls(rules, d["default_template"], noise, d.get("record", {}))


def save_shape_prior(prior: ShapePrior, path) -> None:
    """Write ``prior`` as JSON (atomically)."""
    from digitaltwin_jax.io.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(prior.to_json(), indent=1))


def load_shape_prior(path=None) -> ShapePrior:
    """The shape prior in ``path`` (default: the shipped ``assets/shape_prior.json``).

    Raises:
      FileNotFoundError: no such file.  ValueError: malformed content (the message names the file).
    """
    from digitaltwin_jax.model.head_model import asset_path

    p = asset_path(SHAPE_PRIOR_FILE) if path is None else Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"shape prior file {p} is missing")
    try:
        return ShapePrior.from_json(json.loads(p.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"shape prior file {p} is malformed: {type(e).__name__}: {e}") from None
