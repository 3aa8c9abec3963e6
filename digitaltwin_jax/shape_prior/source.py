"""The calibrated shape source of the avatar pipeline (issue 27): photo -> :class:`~.prior.IdentityPrior`.

embedding (front end) -> regressor's head -> its identity coefficients ``d`` and the embedding's
distance ``m`` from the training renders (the guard's statistics) -> the shipped
:class:`~.prior.ShapePrior` -> centre ``mean + B (c + tau(m) d)`` and width ``sigma(m)``.  The fit then
moves the identity from the centre as far as the landmarks insist under that width.
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.shape_prior.prior import IdentityPrior, ShapePrior, identity_coefficients, identity_projector, load_shape_prior

__all__ = ["CalibratedShapeSource"]


class CalibratedShapeSource:
    """Shape stage ``(image, face, embedding, model) -> (IdentityPrior, info)``.

    Args:
      prior: a :class:`ShapePrior` (default: the shipped one).
      template: which template variant (None: the prior's default).
      regressor: a :class:`~digitaltwin_jax.regressor.shape_source.RegressorShapeSource` (default:
        the shipped decoder); guard: its :class:`~digitaltwin_jax.regressor.guard.OODGuard`, whose
        statistics give the distance (default: the shipped one).

    Without an embedding (face None, encoder failure) the trust is 0: the template with the prior's
    width, and ``info["trust"]`` says so.
    """

    name = "calibrated"

    def __init__(self, prior: ShapePrior | None = None, template: str | None = None, regressor=None, guard=None):
        from digitaltwin_jax.regressor.guard import load_guard
        from digitaltwin_jax.regressor.shape_source import RegressorShapeSource

        self.prior = load_shape_prior() if prior is None else prior
        self.template = template
        self.prior.rule(template)  # unknown names fail here, not at the first photo
        self.regressor = RegressorShapeSource() if regressor is None else regressor
        self.guard = load_guard() if guard is None else guard
        self._projector = None  # the regressor's model's identity projector, computed at the first photo

    def identity_prior(self, embedding, model) -> IdentityPrior:
        """The :class:`IdentityPrior` for a ``(D,)`` embedding (or None) and ``model``."""
        if embedding is None:
            return self.prior.prior(model, None, float("nan"), self.template)
        e = np.asarray(embedding, np.float32).ravel()
        from digitaltwin_jax.model.head_model import load_head_model

        own = load_head_model(self.regressor.regressor.resolution)  # the identity basis both meshes share
        if self._projector is None:
            self._projector = identity_projector(own)
        d = identity_coefficients(own, self.regressor.predict_embedding(e, own), projector=self._projector)
        return self.prior.prior(model, d, float(self.guard.distance(e)[0]), self.template,
                                trust_floor=float(self.guard.factor(e)[0]))

    def __call__(self, image, face, embedding, model):
        if face is None:
            return None
        e = embedding
        if e is not None:
            e = np.asarray(e, np.float32).ravel()
            if not np.all(np.isfinite(e)):
                e = None
        if e is None:
            e = self.regressor.embed(image, face)
        p = self.identity_prior(e, model)
        return p, dict(p.info)
