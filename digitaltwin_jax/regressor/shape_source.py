"""The regressor as a shape source of the avatar pipeline (paper section 3.3, Fig. 2 "testing").

photo + detected face -> identity embedding (front end) -> decoder -> neutral head ``(V, 3)`` mm,
the starting shape P of the non-rigid fit (section 3.4).

A shape source is any callable ``(image, face, model) -> (V, 3) float32 vertices in mm, or None``
(None: "I cannot say", the pipeline then falls back to the landmark identity fit).  The pipeline's
stage form ``(image, face, embedding, model)`` is accepted too (the embedding is then reused).

What ``--shape-source auto`` runs is decided by the fidelity benchmark, not here
(:data:`digitaltwin_jax.pipeline.AUTO_SHAPE_SOURCE`).

The shipped decoder predicts the ``"low"`` mesh.  For a model of another resolution the prediction
is carried over through the identity space both meshes share: the least-squares (ridge 1e-3)
identity coefficients of the low prediction are applied to the target model.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from digitaltwin_jax.regressor.weights import Regressor, load_regressor

__all__ = ["RegressorShapeSource"]


class RegressorShapeSource:
    """Callable shape source backed by a trained decoder.

    Args:
      regressor: a :class:`Regressor`, a folder to load one from, or None for the shipped one.
      embed_fn: ``(image, face) -> (D,) float32`` encoder; default
        ``digitaltwin_jax.frontend.identity_embedding`` (dlib ResNet, D = 128).
      ridge: Tikhonov weight of the identity-space transfer between resolutions.
      guard: optional :class:`~.guard.OODGuard`: the prediction is pulled toward the template head
        by ``guard.factor(embedding)`` (the source is then named ``"guarded"`` and returns
        ``(vertices, {"mahalanobis": m, "guard_factor": s})``).

    Call: ``source(image, face, model)`` or ``source(image, face, embedding, model)`` with ``image``
    as the front end takes it (HWC uint8 RGB), ``face`` the front end's detection, ``embedding`` an
    already computed ``(D,)`` feature (or None) and ``model`` the :class:`HeadModel` the pipeline fits;
    returns ``(model.num_vertices, 3) float32`` mm, or None when no embedding could be computed
    (face None, encoder failure or non-finite output).
    """

    def __init__(self, regressor=None, embed_fn: Callable | None = None, ridge: float = 1e-3, guard=None):
        if regressor is None or not isinstance(regressor, Regressor):
            regressor = load_regressor(regressor)
        self.regressor = regressor
        self._embed_fn = embed_fn
        self.ridge = float(ridge)
        self.guard = guard
        self._transfer: dict = {}

    @property
    def name(self) -> str:
        return "regressor" if self.guard is None else "guarded"

    def embed(self, image, face) -> np.ndarray | None:
        """The encoder's ``(D,)`` feature, or None."""
        fn = self._embed_fn
        if fn is None:
            from digitaltwin_jax.frontend import identity_embedding as fn
        try:
            e = fn(image, face)
        except (ValueError, RuntimeError):
            return None
        if e is None:
            return None
        e = np.asarray(e, np.float32).ravel()
        if e.shape != (self.regressor.config.embedding_dim,) or not np.all(np.isfinite(e)):
            return None
        return e

    def predict_embedding(self, embedding, model=None) -> np.ndarray:
        """Decoder output for a ``(D,)`` embedding, moved to ``model``'s resolution if given."""
        v = np.asarray(self.regressor(embedding), np.float32)
        if model is None or model.num_vertices == v.shape[0]:
            return v
        return self._to_model(v, model)

    def __call__(self, image, face, *rest) -> np.ndarray | None:
        if len(rest) == 1:
            embedding, model = None, rest[0]
        elif len(rest) == 2:
            embedding, model = rest
        else:
            raise TypeError("call as source(image, face, model) or source(image, face, embedding, model)")
        if face is None:
            return None
        e = None
        if embedding is not None:
            e = np.asarray(embedding, np.float32).ravel()
            if e.shape != (self.regressor.config.embedding_dim,) or not np.all(np.isfinite(e)):
                e = None
        if e is None:
            e = self.embed(image, face)
        if e is None:
            return None
        if self.guard is None:
            return self.predict_embedding(e, model)
        from digitaltwin_jax.model.head_model import load_head_model

        # guard at the regressor's own resolution (its template), then carry over like any prediction
        own = load_head_model(self.regressor.resolution)
        v = self.guard.apply(own.vertices, self.predict_embedding(e, own)[None], e[None])[0]
        if model is not None and model.num_vertices != v.shape[0]:
            v = self._to_model(v, model)
        info = {"mahalanobis": float(self.guard.distance(e)[0]), "guard_factor": float(self.guard.factor(e)[0]),
                "guard_m_ref": float(self.guard.m_ref)}
        return v, info

    def _to_model(self, v: np.ndarray, model) -> np.ndarray:
        from digitaltwin_jax.model.head_model import load_head_model
        from digitaltwin_jax.shape_prior.prior import identity_coefficients, identity_projector

        key = (model.resolution, model.num_vertices)
        if key not in self._transfer:
            src = load_head_model(self.regressor.resolution)
            if src.num_vertices != v.shape[0] or src.num_identity != model.num_identity:
                raise ValueError(
                    f"cannot transfer a {v.shape[0]}-vertex prediction to a {model.num_vertices}-vertex model"
                )
            self._transfer[key] = identity_projector(src, self.ridge)  # alpha = solve @ (v - mean)
        alpha = identity_coefficients(None, v, projector=self._transfer[key])
        out = model.vertices.astype(np.float64) + np.tensordot(alpha, model.identity_basis.astype(np.float64), axes=1)
        return out.astype(np.float32)
