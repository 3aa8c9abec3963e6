"""Initialisation of the fit: the EPnP pose from the model's 3D landmarks (paper ref. [26])."""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.camera import epnp_pose
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.inputs import _base_shape, _check_image_size, _check_landmarks
from digitaltwin_jax.model.head_model import HeadModel

__all__ = ["initial_pose"]


def initial_pose(model: HeadModel, landmarks_2d, image_size, shape=None, config: FitConfig = FitConfig()):
    """EPnP initial pose ``(q (4,), t (3,))`` float64 from the model's 3D landmarks (paper: [26]).

    Uses the 51 inner landmarks when ``config.epnp_inner_only`` (and at least 6 of them are valid).
    """
    lm, valid = _check_landmarks(landmarks_2d)
    base = _base_shape(model, shape)
    obj = base[np.asarray(model.landmark_indices)]
    use = valid.copy()
    if config.epnp_inner_only and valid[17:].sum() >= 6:
        use[:17] = False
    return epnp_pose(obj[use], lm[use], _check_image_size(image_size))
