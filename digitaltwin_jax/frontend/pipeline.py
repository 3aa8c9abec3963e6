"""Box detector + landmark predictor composed into a :class:`~digitaltwin_jax.frontend.types.FaceDetector`.

Detection cost grows with the pixels searched, so boxes are found on a resized copy of the photo
(paper section 3.4's "detected facial bounding box"), then landmarks are predicted from the
full-resolution image inside the box mapped back, so landmark coordinates are always in the input's
pixels.  The copy is chosen coarse-to-fine:

1. first at ``coarse_side`` pixels on the longest side (a 4000-pixel selfie is searched at 512);
2. if that finds nothing, at twice the scale, and so on up to the scale at which a face box of
   ``smallest_face`` input pixels reaches the detector's window (upsampling small photos), capped at
   ``max_pixels``;
3. if it finds only a *doubtful* face -- the best score is below ``strong_score``, or every box is
   smaller than ``small_side`` detector windows on a downsampled copy and none of them fits the
   landmark model well (flip inconsistency above ``max_inconsistency``, below) -- the finer copies up
   to the photo's own resolution are searched too and the candidates merged (a small real face that
   the coarse copy shrank below the detector's window is then found next to the false positive
   that the coarse copy did report).

Candidates are then ranked by how well the 68-point model fits them: the flip inconsistency of the
landmark predictor (:meth:`~digitaltwin_jax.frontend.refine.CoarseToFinePredictor.predict_with_consistency`,
0.6-0.9 % of the eye distance on real faces, ~3 % on a face-like drawing).  When some candidates fit
well (``<= max_inconsistency``) the others are dropped.

A large face found clearly on the coarse copy (the common case) costs only the coarse pass; tiny
faces are still found, so that :func:`~digitaltwin_jax.frontend.detect_faces` can say "too small"
instead of "no face".  With ``exhaustive=True`` every scale is searched and duplicates merged (group
photos with faces of very different sizes).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitaltwin_jax.frontend.types import BoxDetector, Face, LandmarkPredictor

__all__ = ["DetectionConfig", "FaceDetectorPipeline", "detection_scales"]


@dataclass(frozen=True)
class DetectionConfig:
    """Multi-scale search of :class:`FaceDetectorPipeline`.

    Attributes:
      coarse_side: longest side (pixels) of the first, cheapest detection copy; never upsampled.
      smallest_face: smallest face box (input pixels) searched for when coarser copies find nothing.
      max_pixels: largest detection copy (pixels); limits time and memory on huge photos.
      exhaustive: search every scale instead of stopping at the first that finds a face.
      nms_iou: boxes overlapping more than this (intersection over union) are merged across scales.
      strong_score: a first hit whose best detector score is below this is doubtful (finer copies
        are searched too).  dlib HOG: false positives ~0.1-0.7, clear faces > 1.
      small_side: on a downsampled copy, a first hit whose largest box is below this many detector
        windows, and whose landmarks fit badly, is doubtful too (faces a little smaller were
        invisible on that copy).
      max_inconsistency: candidates whose landmark flip inconsistency (% of the eye distance) is above
        this are dropped when at least one candidate is below it.  Real faces: 0.6-0.9 %.
    """

    coarse_side: int = 512
    smallest_face: float = 30.0
    max_pixels: int = 2_000_000
    exhaustive: bool = False
    nms_iou: float = 0.4
    strong_score: float = 1.0
    small_side: float = 1.5
    max_inconsistency: float = 2.0

    def __post_init__(self):
        if self.coarse_side < 32:
            raise ValueError(f"coarse_side must be >= 32; got {self.coarse_side}")
        if self.coarse_side**2 > self.max_pixels:
            raise ValueError("max_pixels must be at least coarse_side ** 2")
        if not self.smallest_face > 0:
            raise ValueError(f"smallest_face must be positive; got {self.smallest_face}")


def detection_scales(image_size, window: float, config: DetectionConfig = DetectionConfig()) -> list[float]:
    """Scales (detection copy / input) searched in order for an image of ``image_size = (h, w)``."""
    h, w = image_size
    s0 = min(1.0, config.coarse_side / max(h, w))
    s_cap = np.sqrt(config.max_pixels / float(h * w))
    s_end = min(window / config.smallest_face, s_cap)
    scales = [s0]
    while scales[-1] * 1.01 < s_end:
        scales.append(min(2.0 * scales[-1], s_end))
    return scales


class FaceDetectorPipeline:
    """``detector(image (H, W, 3) uint8) -> list[Face]``, largest box first, coordinates in input pixels.

    Args:
      box_detector: any :class:`BoxDetector`; default dlib HOG
        (:class:`~digitaltwin_jax.frontend.dlib_models.HogBoxDetector`).
      landmark_predictor: any :class:`LandmarkPredictor`; default dlib's 68-point model inside
        :class:`~digitaltwin_jax.frontend.refine.CoarseToFinePredictor`.
      config: :class:`DetectionConfig`.
    """

    def __init__(
        self,
        box_detector: BoxDetector | None = None,
        landmark_predictor: LandmarkPredictor | None = None,
        config: DetectionConfig = DetectionConfig(),
    ):
        if box_detector is None or landmark_predictor is None:
            from digitaltwin_jax.frontend.dlib_models import DlibShapePredictor, HogBoxDetector
            from digitaltwin_jax.frontend.refine import CoarseToFinePredictor

            box_detector = box_detector or HogBoxDetector()
            landmark_predictor = landmark_predictor or CoarseToFinePredictor(DlibShapePredictor())
        self.box_detector = box_detector
        self.landmark_predictor = landmark_predictor
        self.config = config

    def smallest_detectable(self, image_size) -> float:
        """Smallest face box (input pixels) that the search reaches for an image of ``(h, w)``."""
        return float(self.box_detector.window / detection_scales(image_size, self.box_detector.window, self.config)[-1])

    def detect_boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(N, 4) float32`` in input pixels and scores ``(N,) float32``, largest first."""
        return self._search(image, {})

    def _search(self, image: np.ndarray, fitted: dict) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`detect_boxes`; ``fitted`` receives ``{box bytes: (landmarks, inconsistency)}`` computed on the way."""
        h, w = image.shape[:2]
        found_b, found_s = [], []
        refining = False
        for s in detection_scales((h, w), self.box_detector.window, self.config):
            if refining and s > 1.0 + 1e-9:
                break  # a doubtful first hit is re-checked up to the photo's own resolution, not beyond
            nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
            if (nw, nh) == (w, h):
                copy = image
            else:
                interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
                copy = cv2.resize(image, (nw, nh), interpolation=interp)
            boxes, scores = self.box_detector(np.ascontiguousarray(copy))
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            if len(boxes):
                found_b.append(boxes * np.array([w / nw, h / nh, w / nw, h / nh]))
                found_s.append(np.asarray(scores, dtype=np.float64).reshape(-1))
                if self.config.exhaustive or refining:
                    continue
                if not self._doubtful(image, found_b[-1], found_s[-1], s, fitted):
                    break
                refining = True
        if not found_b:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes, scores = np.concatenate(found_b), np.concatenate(found_s)
        keep = _nms(boxes, scores, self.config.nms_iou)
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-_area(boxes), kind="stable")
        return boxes[order].astype(np.float32), scores[order].astype(np.float32)

    def _doubtful(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, s: float, fitted: dict) -> bool:
        """First hit (boxes in input pixels, found at scale ``s``): weakly scored, or small on a
        downsampled copy with no box whose landmarks fit well."""
        if scores.max() < self.config.strong_score:
            return True
        if s >= 1.0 or np.sqrt(_area(boxes)).max() * s >= self.config.small_side * self.box_detector.window:
            return False
        if not hasattr(self.landmark_predictor, "predict_with_consistency"):
            return False
        return min(self._fit(image, b, fitted)[1] for b in boxes) > self.config.max_inconsistency

    def _fit(self, image, box, fitted: dict):
        """``(landmarks, flip inconsistency)`` of a box, computed once per search."""
        b = np.asarray(box, dtype=np.float32)  # the float32 box that detect_boxes returns
        key = b.tobytes()
        if key not in fitted:
            fitted[key] = self.landmark_predictor.predict_with_consistency(image, b)
        return fitted[key]

    def __call__(self, image: np.ndarray) -> list[Face]:
        fitted: dict = {}
        boxes, scores = self._search(image, fitted)
        if not hasattr(self.landmark_predictor, "predict_with_consistency"):
            return [Face(b, self.landmark_predictor(image, b), s) for b, s in zip(boxes, scores)]
        found = [(b, *self._fit(image, b, fitted), s) for b, s in zip(boxes, scores)]
        good = [f for f in found if f[2] <= self.config.max_inconsistency]
        return [Face(b, lm, s) for b, lm, _, s in (good or found)]


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (highest score first)."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = np.array(order, dtype=int)
        if rest.size == 0:
            break
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = _area(boxes[i : i + 1]) + _area(boxes[rest]) - inter
        order = [j for j, o in zip(rest, inter / np.maximum(union, 1e-12)) if o <= iou]
    return np.array(keep, dtype=int)
