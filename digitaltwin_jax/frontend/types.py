"""Front-end data types and the plug-in interfaces (paper section 3.4 landmarks, section 3.3 identity).

Everything the fitting code needs from a photo is a :class:`Face`: a box, 68 landmarks and a score.
Any object satisfying :class:`FaceDetector` (a callable ``image -> list[Face]``) or
:class:`IdentityEncoder` (``(image, face) -> (D,) float32``) can replace the shipped dlib models; the
finer-grained :class:`BoxDetector` and :class:`LandmarkPredictor` let a user swap only one stage of
:class:`~digitaltwin_jax.frontend.pipeline.FaceDetectorPipeline`.

Conventions: images are ``(H, W, 3) uint8`` RGB; boxes are ``(4,) float32 [x0, y0, x1, y1]`` and
landmarks ``(68, 2) float32``, both in pixel coordinates of the input image with x = column,
y = row and the origin at the top-left corner of the top-left pixel (pixel centres at ``i + 0.5``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from digitaltwin_jax.frontend.landmarks68 import outer_eye_distance

__all__ = [
    "LANDMARK_ROUTES",
    "Face",
    "FrontendError",
    "NoFaceError",
    "FaceTooSmallError",
    "FaceIndexError",
    "FaceDetector",
    "IdentityEncoder",
    "BoxDetector",
    "LandmarkPredictor",
]


LANDMARK_ROUTES = ("mediapipe", "dlib")
"""Where the 68 points can come from: MediaPipe's mesh through the learned mapping, or dlib's model."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
      box: ``(4,) float32`` ``[x0, y0, x1, y1]`` detector box in input-image pixels.
      landmarks: ``(68, 2) float32`` iBUG/Multi-PIE points in input-image pixels.
      score: detector confidence (larger is more confident; the scale depends on the detector).
      dense: ``(468, 2) float32`` MediaPipe Face Mesh points in input-image pixels, or None (a face
        found without the MediaPipe models).  Index order is MediaPipe's canonical mesh.
      irises: ``(2, 5, 2) float32`` iris centre and four contour points of the eye at image left in a
        frontal photo (the subject's right eye, iBUG points 36-41) and then of the other eye, pixels; or None.
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    dense: np.ndarray | None = None
    irises: np.ndarray | None = None

    def __post_init__(self):
        box = np.asarray(self.box, dtype=np.float32).reshape(-1)
        lm = np.asarray(self.landmarks, dtype=np.float32)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box must be four finite numbers [x0, y0, x1, y1] with x1 > x0, y1 > y0; got {self.box!r}")
        if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
            raise ValueError(f"landmarks must be a finite (68, 2) array; got shape {np.shape(self.landmarks)}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "score", float(self.score))
        for name, shape in (("dense", (468, 2)), ("irises", (2, 5, 2))):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v, dtype=np.float32)
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be None or a finite {shape} array; got shape {np.shape(v)}")
            object.__setattr__(self, name, a)

    @property
    def area(self) -> float:
        """Box area in square pixels (detect_faces orders faces by it, largest first, within its groups)."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    @property
    def eye_distance(self) -> float:
        """Outer-eye-corner distance ``W_eye`` in pixels (paper eq. 1's normaliser)."""
        return float(outer_eye_distance(self.landmarks))


class FrontendError(ValueError):
    """Base class of the front end's "this photo cannot be used" errors."""


class NoFaceError(FrontendError):
    """No face was found in the image."""


class FaceTooSmallError(FrontendError):
    """Faces were found but all are below the minimum size.

    Attributes:
      size: outer-eye-corner distance of the largest face found, pixels.
      minimum: the required minimum, pixels.
    """

    def __init__(self, size: float, minimum: float):
        self.size = float(size)
        self.minimum = float(minimum)
        super().__init__(
            f"face too small: the largest face found has an outer-eye-corner distance of "
            f"{self.size:.1f} px, the minimum is {self.minimum:.0f} px (a face roughly "
            f"{2 * self.minimum:.0f} px wide); use a larger or closer photo, or lower min_eye_distance"
        )

    def __reduce__(self):  # picklable (it crosses from the front end's helper process)
        return type(self), (self.size, self.minimum)


class FaceIndexError(FrontendError):
    """The requested face index is not among the faces found.

    Faces are numbered from 0 in the order :func:`~digitaltwin_jax.frontend.detect_faces` returns
    them: with the default detector, faces passing its mirror test (clearly seen, roughly frontal)
    first, largest box first within each group.

    Attributes:
      index: the requested index.
      count: how many faces were found.
    """

    def __init__(self, index: int, count: int):
        self.index = int(index)
        self.count = int(count)
        valid = "0" if self.count == 1 else f"0 to {self.count - 1}"
        super().__init__(
            f"face index {self.index} is out of range: {self.count} face(s) found (numbered from 0: "
            f"clearly seen faces first, then by size); choose {valid}"
        )

    def __reduce__(self):  # picklable (it crosses from the front end's helper process)
        return type(self), (self.index, self.count)


def pick_face(faces: list, index: int, name: str | None = None):
    """``faces[index]`` for ``0 <= index < len(faces)``, else :class:`FaceIndexError` (negative indices
    are refused: "-1" would silently pick the smallest face)."""
    if not 0 <= int(index) < len(faces):
        raise FaceIndexError(index, len(faces))
    return faces[int(index)]


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces: ``detector(image: (H, W, 3) uint8) -> list[Face]`` in input-image pixels.

    The list may be empty and in any order; :func:`~digitaltwin_jax.frontend.detect_faces` sorts it,
    applies the minimum size and raises the errors.
    """

    def __call__(self, image: np.ndarray) -> list[Face]: ...


@runtime_checkable
class IdentityEncoder(Protocol):
    """Identity feature of one face: ``encoder(image, face) -> (dim,) float32`` (paper section 3.3)."""

    dim: int

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray: ...


@runtime_checkable
class BoxDetector(Protocol):
    """Face boxes in one image: ``(boxes (N, 4) float32, scores (N,) float32)``.

    ``window`` is the smallest face box (pixels) the detector finds at the image's own scale; the
    pipeline resizes the image so that faces of the wanted sizes are at least that large.
    """

    window: float

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class LandmarkPredictor(Protocol):
    """68 landmarks of the face in ``box``: ``predictor(image, box (4,)) -> (68, 2) float32``."""

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray: ...
