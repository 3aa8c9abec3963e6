"""The 68-point iBUG / Multi-PIE landmark layout, its mirror permutation and the normalised error.

Paper section 3.4 normalises landmark distances by ``W_eye``, the distance between the two outermost
eye landmarks; :func:`outer_eye_distance` is that quantity and :func:`normalised_mean_error` reports
mean point-to-point error in per cent of it (the 300-W "inter-ocular" NME).

Index groups (0-based): jaw 0-16, brows 17-26 (subject's right 17-21, left 22-26), nose bridge 27-30,
lower nose 31-35, eyes 36-47 (subject's right 36-41 with outer corner 36, left 42-47 with outer corner
45), outer lip 48-59, inner lip 60-67.  "Subject's right" is on the image's left in a frontal photo.

Landmark arrays are ``(..., 68, 2)`` pixel coordinates, x = column, y = row, origin at the top-left
corner of the top-left pixel (pixel centres at ``i + 0.5``), the same convention as ``camera.py``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "NUM_LANDMARKS",
    "JAW",
    "BROWS",
    "NOSE",
    "EYES",
    "RIGHT_EYE",
    "LEFT_EYE",
    "MOUTH",
    "INNER",
    "PARTS",
    "FLIP_PERMUTATION",
    "flip_landmarks",
    "outer_eye_distance",
    "normalised_mean_error",
]

NUM_LANDMARKS = 68
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
RIGHT_EYE = np.arange(36, 42)  # subject's right eye (image left)
LEFT_EYE = np.arange(42, 48)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
INNER = np.arange(17, 68)  # everything but the jaw line
PARTS = {"jaw": JAW, "brows": BROWS, "nose": NOSE, "eyes": EYES, "mouth": MOUTH}


def _flip_permutation() -> np.ndarray:
    perm = np.arange(NUM_LANDMARKS)

    def mirror(a, b):  # reverse index range a..b inclusive
        perm[a : b + 1] = np.arange(b, a - 1, -1)

    mirror(0, 16)  # jaw
    mirror(17, 26)  # brows
    mirror(31, 35)  # lower nose; the bridge 27-30 lies on the mid line
    # eyes: outer corner, upper lid (2), inner corner, lower lid (2), clockwise in the image
    for r, l in zip((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46)):
        perm[r], perm[l] = l, r
    mirror(48, 54)  # outer upper lip, corner to corner
    mirror(55, 59)  # outer lower lip
    mirror(60, 64)  # inner upper lip
    mirror(65, 67)  # inner lower lip
    return perm


FLIP_PERMUTATION = _flip_permutation()
"""``(68,) int``: index of each point's mirror partner; ``flipped[i] = original[FLIP_PERMUTATION[i]]``."""


def flip_landmarks(landmarks, width: float) -> np.ndarray:
    """Landmarks of the horizontally mirrored image ``image[:, ::-1]``.

    Args:
      landmarks: ``(..., 68, 2)`` float pixel coordinates (corner convention) in the original image.
      width: image width W in pixels; a point at x maps to ``W - x``.

    Returns:
      ``(..., 68, 2)`` float landmarks of the mirrored face, re-ordered with :data:`FLIP_PERMUTATION`
      so that index i is again the i-th iBUG point of the mirrored face.
    """
    q = np.array(landmarks, dtype=np.float64, copy=True)
    _check(q, "landmarks")
    q[..., 0] = float(width) - q[..., 0]
    return q[..., FLIP_PERMUTATION, :].astype(np.asarray(landmarks).dtype, copy=False)


def outer_eye_distance(landmarks) -> np.ndarray:
    """``W_eye`` of paper eq. (1): distance between the outer eye corners 36 and 45, shape ``(...)``."""
    q = np.asarray(landmarks, dtype=np.float64)
    _check(q, "landmarks")
    return np.linalg.norm(q[..., 36, :] - q[..., 45, :], axis=-1)


def normalised_mean_error(predicted, reference, indices=None) -> np.ndarray:
    """Mean point-to-point error in per cent of the reference's outer-eye-corner distance.

    Args:
      predicted, reference: ``(..., 68, 2)`` landmarks.
      indices: optional subset of point indices to average over (e.g. :data:`EYES`); the normaliser is
        always the full reference's ``W_eye``.

    Returns:
      ``(...)`` float64, ``100 * mean_i |p_i - r_i| / W_eye(reference)``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    _check(p, "predicted")
    _check(r, "reference")
    d = np.linalg.norm(p - r, axis=-1)
    if indices is not None:
        d = d[..., np.asarray(indices)]
    w = outer_eye_distance(r)
    if np.any(w <= 0):
        raise ValueError("reference outer eye corners coincide; the error cannot be normalised")
    return 100.0 * d.mean(axis=-1) / w


def _check(q: np.ndarray, name: str) -> None:
    if q.ndim < 2 or q.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"{name} must have shape (..., 68, 2); got {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError(f"{name} contains NaN or infinity")
