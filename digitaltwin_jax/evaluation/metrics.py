"""Reconstruction error metrics (paper section 4.3), re-exported from their modules so that
``digitaltwin_jax.evaluation.metrics`` keeps working: the crop rule (:mod:`.crop`), the alignment of
a prediction onto the ground truth (:mod:`.registration`), ARMSE as 3DFAW (:mod:`.armse_metric`),
the full protocol (:mod:`.protocol`) and the NoW-style metric (:mod:`.now`).
"""
from __future__ import annotations

# the names repeat evaluation/__init__'s on purpose: this module only keeps the older import path
from digitaltwin_jax.evaluation.armse_metric import DEFAULT_RADII, ARMSEResult, armse, armse_curve
from digitaltwin_jax.evaluation.crop import CROP_TARGETS, crop_mesh
from digitaltwin_jax.evaluation.now import NoWConfig, NoWResult, now_metric
from digitaltwin_jax.evaluation.protocol import (
    EvaluationConfig,
    EvaluationResult,
    evaluate_model_prediction,
    evaluate_reconstruction,
    interocular_distance,
)
from digitaltwin_jax.evaluation.registration import Alignment, AlignmentConfig, align_prediction

__all__ = [
    "CROP_TARGETS",
    "DEFAULT_RADII",
    "crop_mesh",
    "interocular_distance",
    "AlignmentConfig",
    "Alignment",
    "align_prediction",
    "ARMSEResult",
    "armse",
    "armse_curve",
    "EvaluationConfig",
    "EvaluationResult",
    "evaluate_reconstruction",
    "evaluate_model_prediction",
    "NoWConfig",
    "NoWResult",
    "now_metric",
]
