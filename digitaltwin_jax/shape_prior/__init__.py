"""The avatar's shape prior calibrated on real photos (issue 27): template, trusted share of the
regressor and identity-prior width, from the evidence of real photos' landmarks (empirical Bayes).

* :mod:`.evidence`: the linearised landmark model and its closed-form evidence (eq. 1 as a likelihood);
* :mod:`.calibrate`: empirical Bayes over many photos, the template for real people, held-out scores;
* :mod:`.prior`: :class:`ShapePrior` (the shipped calibration) and :class:`IdentityPrior` (what the fit gets);
* :mod:`.source`: :class:`CalibratedShapeSource`, the pipeline's ``"calibrated"`` shape stage.
"""
from digitaltwin_jax.shape_prior.calibrate import (
    EvidenceSet, PriorRule, calibrate, heldout_log_evidence, mean_identity, photo_log_evidence)
from digitaltwin_jax.shape_prior.evidence import PhotoEvidence, linearise, log_evidence, log_evidence_fixed
from digitaltwin_jax.shape_prior.prior import (
    TEMPLATES, IdentityPrior, ShapePrior, identity_coefficients, load_shape_prior, save_shape_prior)
from digitaltwin_jax.shape_prior.source import CalibratedShapeSource

__all__ = ["EvidenceSet", "PriorRule", "calibrate", "heldout_log_evidence", "mean_identity", "photo_log_evidence",
           "PhotoEvidence", "linearise", "log_evidence", "log_evidence_fixed", "TEMPLATES", "IdentityPrior",
           "ShapePrior", "identity_coefficients", "load_shape_prior", "save_shape_prior", "CalibratedShapeSource"]
