"""The shipped front-end models: dlib's HOG face detector, 68-point ERT shape predictor and ResNet identity
embedding (paper section 3.4 landmarks via ref. [24]'s regression-tree method; section 3.3 identity).

The weights come from the ``face-recognition-models`` pip package (nothing is downloaded at run time)
and are loaded lazily, once per object.  Licence: dlib's author released these model files into the
public domain, but the 68-point model was trained on the iBUG 300-W data set, whose licence excludes
commercial use, and its creators ask that the trained model not be used in a commercial product.
Replace :class:`DlibShapePredictor` for commercial use: any
:class:`~digitaltwin_jax.frontend.types.LandmarkPredictor` plugs into the same pipeline.  The HOG
detector and the ResNet embedding carry no such restriction (per dlib's model notes).

All coordinates here use the front end's corner convention (pixel centres at ``i + 0.5``); dlib's own
integer pixel indices are converted at this boundary.
"""
from __future__ import annotations

import threading

import numpy as np

from digitaltwin_jax.frontend.types import Face

__all__ = ["model_path", "HogBoxDetector", "DlibShapePredictor", "DlibFivePointPredictor", "DlibIdentityEncoder"]

_MODEL_FILES = {
    "shape_predictor_68": "shape_predictor_68_face_landmarks.dat",
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
    "face_recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "mmod_detector": "mmod_human_face_detector.dat",
}


def _dlib():
    try:
        import dlib
    except ImportError as e:  # pragma: no cover - dependency is declared in pyproject
        raise ImportError("the dlib front end needs the 'dlib-bin' (or 'dlib') package: pip install dlib-bin") from e
    return dlib


def model_path(name: str) -> str:
    """Path of a model file shipped by ``face-recognition-models``.

    ``name`` is one of ``"shape_predictor_68"``, ``"shape_predictor_5"``, ``"face_recognition"``,
    ``"mmod_detector"``.
    """
    if name not in _MODEL_FILES:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(_MODEL_FILES)}")
    try:
        from importlib.resources import files

        path = files("face_recognition_models") / "models" / _MODEL_FILES[name]
    except ModuleNotFoundError as e:
        raise ImportError("the front-end models need the 'face-recognition-models' package") from e
    if not path.is_file():
        raise FileNotFoundError(f"model file missing from face-recognition-models: {path}")
    return str(path)


def _dlib_rect(box):
    """Our ``[x0, y0, x1, y1]`` corner-convention box -> dlib's inclusive integer rectangle."""
    dlib = _dlib()
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    return dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)


def _rgb_contiguous(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image; got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


class _Lazy:
    """Loads a dlib model on first use (thread-safe), so constructing objects is free."""

    def __init__(self, factory):
        self._factory = factory
        self._obj = None
        self._lock = threading.Lock()

    def get(self):
        if self._obj is None:
            with self._lock:
                if self._obj is None:
                    self._obj = self._factory()
        return self._obj


class HogBoxDetector:
    """dlib's HOG + linear-SVM frontal face detector as a :class:`~digitaltwin_jax.frontend.types.BoxDetector`.

    Detects boxes of about ``window = 80`` pixels and larger at the image's own scale (no upsampling:
    the pipeline chooses the scale).  ``min_score`` drops weak detections; dlib's default is 0, but on
    the example photo the false positives score about 0.1 while the face scores above 1.
    """

    window = 80.0

    def __init__(self, min_score: float = 0.3):
        self.min_score = float(min_score)
        self._det = _Lazy(lambda: _dlib().get_frontal_face_detector())

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image (H, W, 3) uint8`` -> ``(boxes (N, 4) float32, scores (N,) float32)``."""
        rects, scores, _ = self._det.get().run(_rgb_contiguous(image), 0, self.min_score)
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32
        ).reshape(-1, 4)
        return boxes, np.asarray(scores, dtype=np.float32).reshape(-1)


class DlibShapePredictor:
    """dlib's 68-point ensemble-of-regression-trees predictor (Kazemi & Sullivan 2014, the paper's ref. 24).

    ``predictor(image (H, W, 3) uint8, box (4,)) -> (68, 2) float32``.  dlib rounds its output to whole
    pixels; wrap it in :class:`~digitaltwin_jax.frontend.refine.CoarseToFinePredictor` (the default) for
    sub-pixel, resolution-independent points.  Trained on iBUG 300-W: non-commercial use only.
    """

    def __init__(self, path: str | None = None):
        self.path = path or model_path("shape_predictor_68")
        self._sp = _Lazy(lambda: _dlib().shape_predictor(self.path))

    def __call__(self, image: np.ndarray, box) -> np.ndarray:
        shape = self._sp.get()(_rgb_contiguous(image), _dlib_rect(box))
        if shape.num_parts != 68:
            raise ValueError(f"{self.path} predicts {shape.num_parts} points, not 68")
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return pts + 0.5  # pixel index -> corner convention


class DlibFivePointPredictor:
    """dlib's 5-point model (eye corners and the base of the nose), public domain, trained on dlib's own
    5-point data set (not iBUG 300-W): usable commercially.

    ``predictor(image (H, W, 3) uint8, box (4,)) -> (5, 2) float32``: the subject's left eye outer and
    inner corner (image right in a frontal photo), the right eye's outer and inner corner, the nose base.
    :data:`FLIP5` is its mirror permutation.
    """

    def __init__(self, path: str | None = None):
        self.path = path or model_path("shape_predictor_5")
        self._sp = _Lazy(lambda: _dlib().shape_predictor(self.path))

    def __call__(self, image: np.ndarray, box) -> np.ndarray:
        shape = self._sp.get()(_rgb_contiguous(image), _dlib_rect(box))
        if shape.num_parts != 5:
            raise ValueError(f"{self.path} predicts {shape.num_parts} points, not 5")
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) + 0.5


FLIP5 = np.array([2, 3, 0, 1, 4])
"""Mirror partners of the 5-point model's points (eye corners swap sides, the nose base stays)."""


class DlibIdentityEncoder:
    """dlib's ResNet face-recognition embedding as an :class:`~digitaltwin_jax.frontend.types.IdentityEncoder`.

    The face is aligned from its 68 landmarks into dlib's 150 x 150 chip (padding 0.25) and encoded to a
    ``(128,) float32`` vector; two photos of one person are typically closer than 0.6 (Euclidean), the
    threshold dlib reports 99.38 % LFW accuracy with.  ``num_jitters > 0`` averages that many randomly
    jittered chips (slower, slightly more stable).
    """

    dim = 128

    def __init__(self, num_jitters: int = 0, path: str | None = None):
        if int(num_jitters) < 0:
            raise ValueError(f"num_jitters must be >= 0; got {num_jitters}")
        self.num_jitters = int(num_jitters)
        self.path = path or model_path("face_recognition")
        self._net = _Lazy(lambda: _dlib().face_recognition_model_v1(self.path))

    def aligned_chip(self, image: np.ndarray, face: Face) -> np.ndarray:
        """dlib's aligned ``(150, 150, 3) uint8`` chip of ``face`` (what the network sees)."""
        dlib = _dlib()
        img = _rgb_contiguous(image)
        lm = np.asarray(face.landmarks, dtype=np.float64) - 0.5  # corner convention -> pixel index
        pts = [dlib.point(int(round(x)), int(round(y))) for x, y in lm]
        shape = dlib.full_object_detection(_dlib_rect(face.box), pts)
        return np.asarray(dlib.get_face_chip(img, shape, size=150, padding=0.25))

    def __call__(self, image: np.ndarray, face: Face) -> np.ndarray:
        """``(image (H, W, 3) uint8, face) -> (128,) float32`` identity embedding."""
        chip = self.aligned_chip(image, face)
        vec = self._net.get().compute_face_descriptor(chip, self.num_jitters)
        return np.asarray(vec, dtype=np.float32)
