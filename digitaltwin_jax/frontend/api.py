"""User-facing front-end calls: faces with 68 landmarks (paper 3.4) and identity embeddings (paper 3.3).

``detect_faces`` and ``identity_embedding`` take an optional ``detector`` / ``encoder``; without one they
use the shipped dlib models, built once on first use by :func:`default_detector` /
:func:`default_encoder` (a cache of read-only model weights, not mutable state).
"""
from __future__ import annotations

import functools

import numpy as np

from digitaltwin_jax.frontend.types import Face, FaceDetector, FaceTooSmallError, IdentityEncoder, NoFaceError
from digitaltwin_jax.io.images import to_uint8_rgb

__all__ = ["DEFAULT_MIN_EYE_DISTANCE", "default_detector", "default_encoder", "detect_faces", "identity_embedding"]

DEFAULT_MIN_EYE_DISTANCE = 32.0
"""Smallest accepted outer-eye-corner distance in pixels (a face about 64 px wide)."""


@functools.lru_cache(maxsize=1)
def default_detector():
    """The shipped :class:`~digitaltwin_jax.frontend.pipeline.FaceDetectorPipeline` (dlib HOG + 68-point ERT)."""
    from digitaltwin_jax.frontend.pipeline import FaceDetectorPipeline

    return FaceDetectorPipeline()


@functools.lru_cache(maxsize=1)
def default_encoder():
    """The shipped :class:`~digitaltwin_jax.frontend.dlib_models.DlibIdentityEncoder` (128-d ResNet)."""
    from digitaltwin_jax.frontend.dlib_models import DlibIdentityEncoder

    return DlibIdentityEncoder()


def detect_faces(
    image, *, detector: FaceDetector | None = None, min_eye_distance: float = DEFAULT_MIN_EYE_DISTANCE
) -> list[Face]:
    """Find faces and their 68 landmarks.

    Args:
      image: ``(H, W, 3)`` RGB (also ``(H, W)``, ``(H, W, 1)``, ``(H, W, 4)`` with alpha dropped),
        uint8 or float in [0, 1].  To respect EXIF orientation, read files with
        :func:`digitaltwin_jax.io.images.read_image`.
      detector: any :class:`~digitaltwin_jax.frontend.types.FaceDetector`; default
        :func:`default_detector`.
      min_eye_distance: faces whose outer-eye-corner distance (pixels) is below this are dropped.

    Returns:
      Non-empty list of :class:`~digitaltwin_jax.frontend.types.Face` (``box (4,)``,
      ``landmarks (68, 2)`` float32 in input pixels, ``score``), largest box first.

    Raises:
      NoFaceError: nothing was detected.
      FaceTooSmallError: faces were detected but all are below ``min_eye_distance``; the message and
        the ``size`` / ``minimum`` attributes give the numbers.
      TypeError, ValueError: the image array is malformed.
    """
    img = to_uint8_rgb(image)
    if not (np.isfinite(min_eye_distance) and min_eye_distance >= 0):
        raise ValueError(f"min_eye_distance must be a non-negative number; got {min_eye_distance}")
    det = default_detector() if detector is None else detector
    faces = sorted(det(img), key=lambda f: f.area, reverse=True)
    if not faces:
        h, w = img.shape[:2]
        hint = ""
        if hasattr(det, "smallest_detectable"):
            hint = (
                f"; the detector looks for roughly frontal, upright faces at least "
                f"{det.smallest_detectable((h, w)):.0f} px wide"
            )
        raise NoFaceError(f"no face found in the {w} x {h} image{hint}")
    big = [f for f in faces if f.eye_distance >= min_eye_distance]
    if not big:
        raise FaceTooSmallError(max(f.eye_distance for f in faces), min_eye_distance)
    return big


def identity_embedding(image, face: Face, *, encoder: IdentityEncoder | None = None) -> np.ndarray:
    """Identity feature of one face (paper section 3.3's encoder input), from its aligned chip.

    Args:
      image: the image ``face`` was detected in (same conventions as :func:`detect_faces`).
      face: a :class:`~digitaltwin_jax.frontend.types.Face` (its landmarks drive the alignment).
      encoder: any :class:`~digitaltwin_jax.frontend.types.IdentityEncoder`; default
        :func:`default_encoder` (dlib ResNet, 128-d; same person typically < 0.6 apart).

    Returns:
      ``(encoder.dim,) float32`` embedding (``(128,)`` for the default).
    """
    img = to_uint8_rgb(image)
    if not isinstance(face, Face):
        raise TypeError(f"face must be a Face (from detect_faces); got {type(face).__name__}")
    enc = default_encoder() if encoder is None else encoder
    vec = np.asarray(enc(img, face), dtype=np.float32).reshape(-1)
    if vec.shape != (enc.dim,) or not np.all(np.isfinite(vec)):
        raise ValueError(f"encoder returned shape {vec.shape} (expected ({enc.dim},)) or non-finite values")
    return vec
