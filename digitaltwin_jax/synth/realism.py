"""Realism check of synthetic renders with an off-the-shelf face detector (paper section 3.2 renders
must look like photos to a face pipeline): does the front end's detector (dlib HOG + 68-point shape
predictor, :mod:`digitaltwin_jax.frontend`) find the face, and do its 68 landmarks agree with the
projected ground truth?

Error per image: mean distance over the inner points 17-67 (brows, nose, eyes, mouth; the jaw line
0-16 is a silhouette in the detector's annotation but fixed vertices in the model) divided by the
ground truth's outer-eye-corner distance (points 36 and 45), in per cent.  The ground truth is
converted from corner-origin pixels (the engine's convention) to dlib's pixel-centre indices by
subtracting 0.5.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["RealismReport", "realism_check", "INNER_POINTS"]

INNER_POINTS = np.arange(17, 68)


@dataclasses.dataclass(frozen=True)
class RealismReport:
    """Result of :func:`realism_check`.

    Attributes:
      detected: ``(n,) bool`` a face was found near the ground truth.
      nme: ``(n,) float64`` inner-point error in % of the outer-eye distance (nan when not detected).
      detection_rate: fraction detected.
      mean_nme, median_nme: over detected images.
      within: fraction of detected images with ``nme < threshold``.
      threshold: the per-image threshold in %.
    """

    detected: np.ndarray
    nme: np.ndarray
    detection_rate: float
    mean_nme: float
    median_nme: float
    within: float
    threshold: float

    def as_dict(self) -> dict:
        return {"images": int(self.detected.size), "detection_rate": round(self.detection_rate, 4),
                "mean_nme_percent": round(self.mean_nme, 3), "median_nme_percent": round(self.median_nme, 3),
                f"fraction_below_{self.threshold:g}_percent": round(self.within, 4)}


def realism_check(images, landmarks, *, detector=None, threshold: float = 5.0) -> RealismReport:
    """Run the front end on renders and compare with their ground-truth landmarks.

    Args:
      images: ``(n, H, W, 3) uint8`` renders.
      landmarks: ``(n, 68, 2)`` ground truth in corner-origin pixels (``landmarks_2d`` of a shard).
      detector: a :class:`~digitaltwin_jax.frontend.types.FaceDetector` (default: the front end's).
      threshold: per-image error threshold in per cent for ``within``.

    Returns:
      :class:`RealismReport`.
    """
    from digitaltwin_jax.frontend import detect_faces
    from digitaltwin_jax.frontend.types import FrontendError

    images = np.asarray(images)
    gt = np.asarray(landmarks, np.float64) - 0.5
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (n, H, W, 3), got {images.shape}")
    if gt.shape != (images.shape[0], 68, 2):
        raise ValueError(f"landmarks must have shape ({images.shape[0]}, 68, 2), got {gt.shape}")
    n = images.shape[0]
    detected = np.zeros(n, bool)
    nme = np.full(n, np.nan)
    for i in range(n):
        try:
            faces = detect_faces(images[i], detector=detector, min_eye_distance=0.0)
        except FrontendError:
            continue
        iod = float(np.linalg.norm(gt[i, 36] - gt[i, 45]))
        errs = [np.linalg.norm(f.landmarks[INNER_POINTS] - gt[i, INNER_POINTS], axis=1).mean() / iod * 100
                for f in faces]
        best = float(np.min(errs))
        # a detection counts when its landmarks are on this face (not on something in the background)
        if best < 50.0:
            detected[i] = True
            nme[i] = best
    d = nme[detected]
    return RealismReport(
        detected=detected,
        nme=nme,
        detection_rate=float(detected.mean()) if n else 0.0,
        mean_nme=float(d.mean()) if d.size else float("nan"),
        median_nme=float(np.median(d)) if d.size else float("nan"),
        within=float((d < threshold).mean()) if d.size else 0.0,
        threshold=float(threshold),
    )
