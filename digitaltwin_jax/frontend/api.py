"""User-facing front-end calls: faces with 68 landmarks (paper 3.4) and identity embeddings (paper 3.3).

``detect_faces`` and ``identity_embedding`` take an optional ``detector`` / ``encoder``; without one they
use the shipped models, built once on first use by :func:`default_detector` /
:func:`default_encoder` (a cache of read-only model weights, not mutable state).

The default detector is :class:`~.merged.MergedDetector`: BlazeFace and dlib HOG candidates, MediaPipe's
Face Mesh on each, and the 68 points from the route named by ``landmarks``:

* ``"mediapipe"``: the dense points through a mapping learned on renders (:mod:`.dense68`); every model
  involved is Apache-2.0 (MediaPipe), public domain (dlib HOG, dlib's 5-point model) or ours: usable
  commercially;
* ``"dlib"``: dlib's 68-point predictor, trained on iBUG 300-W, whose licence excludes commercial use.

:data:`DEFAULT_LANDMARKS` names the route used when none is given.
"""
from __future__ import annotations

import functools

import numpy as np

from digitaltwin_jax.frontend.types import (
    LANDMARK_ROUTES,
    Face,
    FaceDetector,
    FaceTooSmallError,
    IdentityEncoder,
    NoFaceError,
)
from digitaltwin_jax.io.images import to_uint8_rgb

__all__ = ["DEFAULT_LANDMARKS", "DEFAULT_MIN_EYE_DISTANCE", "LANDMARK_ROUTES", "default_detector", "default_encoder",
           "detect_faces", "identity_embedding"]

DEFAULT_LANDMARKS = "dlib"
"""Route of the 68 points when none is given.  Still ``"dlib"`` (non-commercial): on the fidelity
benchmark's in-distribution set the default shape source (guarded regressor + fit) is 0.045 mm
[0.017, 0.074] worse with ``"mediapipe"`` (64 renders) (its identity embeddings are aligned by other 68 points than
the regressor was trained with), while pose, reprojection and neutral-expression errors are better;
see the front-end page of the docs (docs/packages/frontend.md).  Switching is this one line once the regressor and its guard are
retrained on the mediapipe route's embeddings."""

DEFAULT_MIN_EYE_DISTANCE = 32.0
"""Smallest accepted outer-eye-corner distance in pixels (a face about 64 px wide)."""


def default_detector(landmarks: str | None = None):
    """The shipped :class:`~digitaltwin_jax.frontend.merged.MergedDetector` for a landmark route
    (``"mediapipe"`` or ``"dlib"``; None = :data:`DEFAULT_LANDMARKS`), built once per route."""
    route = DEFAULT_LANDMARKS if landmarks is None else landmarks
    if route not in LANDMARK_ROUTES:
        raise ValueError(f"landmarks must be one of {LANDMARK_ROUTES}; got {landmarks!r}")
    return _detector(route)


@functools.lru_cache(maxsize=2)
def _detector(route: str):
    from digitaltwin_jax.frontend.merged import MergedConfig, MergedDetector

    return MergedDetector(MergedConfig(landmarks=route))


@functools.lru_cache(maxsize=1)
def default_encoder():
    """The shipped :class:`~digitaltwin_jax.frontend.dlib_models.DlibIdentityEncoder` (128-d ResNet)."""
    from digitaltwin_jax.frontend.dlib_models import DlibIdentityEncoder

    return DlibIdentityEncoder()


def detect_faces(
    image, *, detector: FaceDetector | None = None, landmarks: str | None = None,
    min_eye_distance: float = DEFAULT_MIN_EYE_DISTANCE,
) -> list[Face]:
    """Find faces and their 68 landmarks.

    Args:
      image: ``(H, W, 3)`` RGB (also ``(H, W)``, ``(H, W, 1)``, ``(H, W, 4)`` with alpha dropped),
        uint8 or float in [0, 1].  To respect EXIF orientation, read files with
        :func:`digitaltwin_jax.io.images.read_image`.
      detector: any :class:`~digitaltwin_jax.frontend.types.FaceDetector`; default
        :func:`default_detector` for ``landmarks``.
      landmarks: the default detector's 68-point route, ``"mediapipe"`` or ``"dlib"`` (None:
        :data:`DEFAULT_LANDMARKS`); only with ``detector=None``.
      min_eye_distance: faces whose outer-eye-corner distance (pixels) is below this are dropped.

    Returns:
      Non-empty list of :class:`~digitaltwin_jax.frontend.types.Face` (``box (4,)``,
      ``landmarks (68, 2)`` float32 in input pixels, ``score``; from the default detector also
      ``dense (468, 2)`` and ``irises (2, 5, 2)``).  Order: the default detector puts faces that pass
      its mirror test (clear, roughly frontal faces) first, largest box first within each group
      (:mod:`~digitaltwin_jax.frontend.merged`); other detectors' faces are sorted largest box first.

    Raises:
      NoFaceError: nothing was detected.
      FaceTooSmallError: faces were detected but all are below ``min_eye_distance``; the message and
        the ``size`` / ``minimum`` attributes give the numbers.
      TypeError, ValueError: the image array is malformed.
    """
    img = to_uint8_rgb(image)
    if not (np.isfinite(min_eye_distance) and min_eye_distance >= 0):
        raise ValueError(f"min_eye_distance must be a non-negative number; got {min_eye_distance}")
    if detector is not None and landmarks is not None:
        raise ValueError("give either a detector or a landmarks route, not both")
    det = default_detector(landmarks) if detector is None else detector
    faces = det(img)
    if not getattr(det, "ordered", False):
        faces = sorted(faces, key=lambda f: f.area, reverse=True)
    if not faces:
        h, w = img.shape[:2]
        hint = ""
        if hasattr(det, "smallest_detectable"):
            hint = (
                f"; the detector looks for {getattr(det, 'looks_for', 'roughly frontal, upright faces')} at least "
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
