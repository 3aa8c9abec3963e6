"""MediaPipe's face models run with ai-edge-litert: BlazeFace boxes, the 468-point Face Mesh and the irises.

All four model files ship with the package (``digitaltwin_jax/assets/mediapipe``: Apache-2.0, see its
``NOTICE`` and ``SOURCE.json``); nothing is downloaded and the ``mediapipe`` package is not needed.
The anchor generation, box decoding, weighted non-maximum suppression and crop geometry below are
this project's own code, written from the numbers in MediaPipe's published graph files
(``face_detection_short_range.pbtxt``, ``face_detection_full_range.pbtxt``,
``face_detection_front_detection_to_roi.pbtxt``, ``iris_landmark_landmarks_to_roi.pbtxt``).

* :class:`BlazeFace` -- ``detector(image) -> Detections``: boxes ``(N, 4)``, scores ``(N,)`` and six
  keypoints ``(N, 6, 2)`` (subject's right eye, left eye, nose tip, mouth centre, right ear, left ear;
  for a frontal photo the subject's right eye is on the image's left), input-image pixels.
  ``"short"`` (128 x 128, faces filling 15-75 % of the searched square) or ``"full"`` (192 x 192,
  sparse, smaller faces too).
* :class:`FaceMesh` -- ``mesh(image, center, side, angle) -> (points (468, 3), presence)`` on a
  rotated square crop; :func:`mesh_roi_from_keypoints` gives MediaPipe's crop of a detection (1.5 x the
  box, rotated by the eye line).
* :class:`IrisModel` -- ``iris(image, dense) -> (2, 5, 2)``: iris centre and four contour points of
  the eye around mesh points 33/133 (image left in a frontal photo) then 362/263.

Conventions: images ``(H, W, 3) uint8`` RGB; points in input-image pixels, x = column, y = row, origin
at the top-left corner of the top-left pixel (the front end's convention, :mod:`.types`).  Mesh ``z``
is MediaPipe's relative depth, in the same pixel units as x (smaller is closer to the camera).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.resources import files

import numpy as np

from digitaltwin_jax.frontend.chips import apply_affine, invert_affine, similarity_chip

__all__ = [
    "asset_dir",
    "BlazeFace",
    "BlazeFaceConfig",
    "Detections",
    "FaceMesh",
    "IrisModel",
    "MESH_EYE_CORNERS",
    "blazeface_anchors",
    "decode_boxes",
    "weighted_nms",
    "mesh_roi_from_keypoints",
    "mesh_roi_from_points",
    "model_file",
]

MODEL_FILES = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range_sparse.tflite",
    "mesh": "face_landmark.tflite",
    "iris": "iris_landmark.tflite",
}
MESH_EYE_CORNERS = ((33, 133), (362, 263))
"""Mesh indices of the two eyes' corners (image-left eye outer, inner; image-right eye inner, outer)."""


def asset_dir():
    """Folder of the shipped MediaPipe model files (a ``Traversable``)."""
    return files("digitaltwin_jax") / "assets" / "mediapipe"


def model_file(name: str) -> str:
    """Path of a shipped MediaPipe model: ``"short"``, ``"full"``, ``"mesh"`` or ``"iris"``."""
    if name not in MODEL_FILES:
        raise ValueError(f"unknown MediaPipe model {name!r}; choose from {sorted(MODEL_FILES)}")
    path = asset_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe model file missing from the package: {path}")
    return str(path)


class _Model:
    """One TFLite model, loaded on first use (thread-safe), one interpreter per object."""

    def __init__(self, name: str, num_threads: int = 1):
        self.path = model_file(name)
        self.num_threads = int(num_threads)
        self._it = None
        self._lock = threading.Lock()

    def _load(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:  # pragma: no cover - declared in pyproject
            raise ImportError("the MediaPipe front end needs 'ai-edge-litert': pip install ai-edge-litert") from e
        it = Interpreter(model_path=self.path, num_threads=self.num_threads)
        it.allocate_tensors()
        self._in = it.get_input_details()[0]["index"]
        self._out = {d["name"]: d["index"] for d in it.get_output_details()}
        return it

    def run(self, x: np.ndarray) -> dict:
        """``x (1, h, w, 3) float32`` -> ``{output name: array}``."""
        with self._lock:
            if self._it is None:
                self._it = self._load()
            self._it.set_tensor(self._in, np.ascontiguousarray(x, dtype=np.float32))
            self._it.invoke()
            return {k: self._it.get_tensor(i).copy() for k, i in self._out.items()}


# --------------------------------------------------------------------------------------------------
# BlazeFace


@dataclass(frozen=True)
class BlazeFaceConfig:
    """One BlazeFace model's input size, SSD anchor layout and score threshold (MediaPipe's graph values).

    Attributes:
      size: square input side, pixels.
      strides: feature-map stride of each anchor layer.
      interpolated: whether each layer adds an anchor of interpolated scale (``interpolated_scale_aspect_ratio``
        of 1.0; with fixed-size anchors only the count per cell changes).
      min_score: detections with a lower sigmoid score are dropped.
      nms_iou: weighted non-maximum suppression threshold (intersection over union).
    """

    size: int
    strides: tuple
    interpolated: bool
    min_score: float
    nms_iou: float = 0.3


BLAZEFACE = {
    "short": BlazeFaceConfig(size=128, strides=(8, 16, 16, 16), interpolated=True, min_score=0.5),
    "full": BlazeFaceConfig(size=192, strides=(4,), interpolated=False, min_score=0.6),
}


def blazeface_anchors(config: BlazeFaceConfig) -> np.ndarray:
    """``(A, 2) float64`` anchor centres in [0, 1] of the model input, in the model's output order.

    Consecutive layers sharing a stride share one feature map; each of its cells holds one anchor per
    (layer, aspect ratio) and one more per interpolated scale, all at the cell centre (MediaPipe's
    ``fixed_anchor_size``: every anchor is 1 x 1, so only centres matter).
    """
    out = []
    strides = list(config.strides)
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = (j - i) * (2 if config.interpolated else 1)
        n = int(np.ceil(config.size / strides[i]))
        c = (np.arange(n) + 0.5) / n
        yy, xx = np.meshgrid(c, c, indexing="ij")
        cells = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out, axis=0)


def decode_boxes(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, size: int):
    """Decode BlazeFace outputs (``reverse_output_order``: x before y, fixed-size anchors).

    Args:
      raw: ``(A, 16) float`` regressors: box centre offset (2), size (2), six keypoints (12), in input pixels.
      logits: ``(A,)`` or ``(A, 1)`` float class logits.
      anchors: ``(A, 2)`` anchor centres in [0, 1] (:func:`blazeface_anchors`).
      size: model input side, pixels.

    Returns:
      ``(boxes (A, 4) [x0, y0, x1, y1], keypoints (A, 6, 2), scores (A,))``, float64, boxes and
      keypoints in [0, 1] of the model input, scores the sigmoid of the logits clipped to +-100.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 16)
    a = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    ctr = raw[:, 0:2] / size + a
    wh = raw[:, 2:4] / size
    boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) / size + a[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -100, 100)))
    return boxes, kps, scores


def _iou(b: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(b[0], others[:, 0])
    y0 = np.maximum(b[1], others[:, 1])
    x1 = np.minimum(b[2], others[:, 2])
    y1 = np.minimum(b[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda q: np.clip(q[..., 2] - q[..., 0], 0, None) * np.clip(q[..., 3] - q[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(b) + area(others) - inter, 1e-12)


def weighted_nms(boxes, keypoints, scores, iou: float):
    """MediaPipe's weighted non-maximum suppression.

    The best remaining detection and every remaining one overlapping it by more than ``iou`` form a
    cluster; the cluster becomes one detection whose box and keypoints are the score-weighted means
    and whose score is the best one.  Returns ``(boxes (M, 4), keypoints (M, 6, 2), scores (M,))``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    k = np.asarray(keypoints).shape[1] if np.ndim(keypoints) == 3 else 6
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(len(boxes), k, 2)
    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while order.size:
        i = order[0]
        ov = _iou(boxes[i], boxes[order])
        cl = order[ov > iou]
        cl = cl if cl.size else order[:1]
        w = scores[cl] / scores[cl].sum()
        out_b.append((w[:, None] * boxes[cl]).sum(0))
        out_k.append((w[:, None, None] * keypoints[cl]).sum(0))
        out_s.append(scores[i])
        order = order[~np.isin(order, cl)]
    return (np.array(out_b).reshape(-1, 4), np.array(out_k).reshape(-1, k, 2), np.array(out_s).reshape(-1))


@dataclass(frozen=True)
class Detections:
    """BlazeFace detections in input-image pixels.

    Attributes:
      boxes: ``(N, 4) float32`` ``[x0, y0, x1, y1]``.
      keypoints: ``(N, 6, 2) float32`` (subject's right eye, left eye, nose tip, mouth, right ear, left ear).
      scores: ``(N,) float32`` sigmoid scores in (0, 1).
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def concatenate(items) -> "Detections":
        items = list(items)
        if not items:
            return Detections(np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros((0,), np.float32))
        return Detections(*(np.concatenate([getattr(d, k) for d in items]).astype(np.float32)
                            for k in ("boxes", "keypoints", "scores")))


class BlazeFace:
    """MediaPipe's BlazeFace face detector (``"short"`` or ``"full"`` range) on a square window.

    ``detector(image (H, W, 3) uint8, window=None) -> Detections`` in input-image pixels.  The window
    ``(x0, y0, side)`` (default: the whole image, letterboxed into a square with black borders, as
    MediaPipe does) is resized to the model's input; the caller tiles windows to find faces that are
    small relative to the image.

    Args:
      kind: ``"short"`` (128 px input; faces about 15-75 % of the window) or ``"full"`` (192 px; down to
        about 5 % of the window).
      min_score: overrides the graph's threshold (0.5 short, 0.6 full).
    """

    def __init__(self, kind: str = "full", min_score: float | None = None, num_threads: int = 1):
        if kind not in BLAZEFACE:
            raise ValueError(f"kind must be 'short' or 'full'; got {kind!r}")
        self.kind = kind
        self.config = BLAZEFACE[kind]
        self.min_score = self.config.min_score if min_score is None else float(min_score)
        self.anchors = blazeface_anchors(self.config)
        self._model = _Model(kind, num_threads)

    def __call__(self, image: np.ndarray, window=None) -> Detections:
        import cv2

        h, w = image.shape[:2]
        if window is None:
            x0, y0, side = (w - max(h, w)) / 2.0, (h - max(h, w)) / 2.0, float(max(h, w))
        else:
            x0, y0, side = (float(v) for v in window)
        n = self.config.size
        s = n / side
        # window -> input: p_in = s * (p - (x0, y0)); sampled with area averaging when shrinking
        chip, A = similarity_chip(image, (x0 + side / 2, y0 + side / 2), s, 0.0, n, border=cv2.BORDER_CONSTANT)
        x = chip.astype(np.float32) * (2.0 / 255.0) - 1.0
        out = self._model.run(x[None])
        raw, logits = _pick(out, 16), _pick(out, 1)
        boxes, kps, scores = decode_boxes(raw, logits, self.anchors, n)
        keep = scores >= self.min_score
        boxes, kps, scores = weighted_nms(boxes[keep], kps[keep], scores[keep], self.config.nms_iou)
        Ai = invert_affine(A)
        boxes = apply_affine(Ai, boxes.reshape(-1, 2, 2) * n).reshape(-1, 4)
        kps = apply_affine(Ai, kps * n)
        return Detections(boxes.astype(np.float32), kps.astype(np.float32), scores.astype(np.float32))


def _pick(out: dict, last: int) -> np.ndarray:
    """The output tensor whose last axis has ``last`` entries."""
    for v in out.values():
        if v.shape[-1] == last:
            return v.reshape(-1, last)
    raise RuntimeError(f"model output with last axis {last} not found: {[v.shape for v in out.values()]}")


# --------------------------------------------------------------------------------------------------
# Face Mesh and irises


def mesh_roi_from_keypoints(box, keypoints) -> tuple[np.ndarray, float, float]:
    """MediaPipe's Face Mesh crop of a BlazeFace detection: ``(center (2,), side, angle)``.

    The box centre, a square of 1.5 x the box's longer side, rotated by the angle (radians, +x toward
    +y) of the line from keypoint 0 (subject's right eye) to keypoint 1 (left eye).
    """
    b = np.asarray(box, dtype=np.float64).reshape(4)
    k = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    d = k[1] - k[0]
    center = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    return center, 1.5 * float(max(b[2] - b[0], b[3] - b[1])), float(np.arctan2(d[1], d[0]))


def mesh_roi_from_points(dense) -> tuple[np.ndarray, float, float]:
    """Face Mesh crop from a previous mesh (MediaPipe's tracking crop): the rotated bounding box of the
    points, rotation from point 33 to point 263, 1.5 x its longer side.  Returns ``(center, side, angle)``."""
    p = np.asarray(dense, dtype=np.float64)[:, :2]
    d = p[263] - p[33]
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, s], [-s, c]])  # rotates by -angle: the eye line becomes horizontal
    q = p @ R.T
    lo, hi = q.min(0), q.max(0)
    center = R.T @ ((lo + hi) / 2)
    return center, 1.5 * float((hi - lo).max()), angle


class FaceMesh:
    """MediaPipe's 468-point Face Mesh (``face_landmark.tflite``, 192 x 192 input in [0, 1]).

    ``mesh(image, center, side, angle) -> (points (468, 3) float32, presence float)``: the square crop of
    side ``side`` pixels around ``center``, rotated by ``angle`` (radians, the eye line's angle, so the
    face is upright in the crop), points mapped back to input-image pixels.  ``presence`` is the model's
    face-presence probability (MediaPipe treats < 0.5 as "no face in the crop").
    """

    size = 192

    def __init__(self, num_threads: int = 1):
        self._model = _Model("mesh", num_threads)

    def __call__(self, image: np.ndarray, center, side: float, angle: float) -> tuple[np.ndarray, float]:
        n = self.size
        if not (np.isfinite(side) and side > 0):
            raise ValueError(f"side must be positive; got {side}")
        chip, A = similarity_chip(image, center, n / float(side), float(angle), n)
        out = self._model.run(chip.astype(np.float32)[None] / 255.0)
        pts = _pick(out, 1404).reshape(468, 3).astype(np.float64)
        logit = float(_pick(out, 1).reshape(-1)[0])
        xy = apply_affine(invert_affine(A), pts[:, :2])
        z = pts[:, 2] * float(side) / n
        presence = 1.0 / (1.0 + np.exp(-np.clip(logit, -100, 100)))
        return np.concatenate([xy, z[:, None]], axis=1).astype(np.float32), float(presence)


class IrisModel:
    """MediaPipe's iris model (``iris_landmark.tflite``, 64 x 64 input in [0, 1]) on both eyes of a mesh.

    ``iris(image, dense (468, 2|3)) -> (2, 5, 2) float32``: for the eye around mesh points 33/133 (image
    left in a frontal photo, the subject's right eye: iBUG points 36-41) and then the eye around
    362/263, the iris centre and four contour points in input-image pixels.  Each eye's crop is a
    square of 2.3 x its corner distance, rotated by the corner line; the second eye is mirrored before
    the model (which was trained on one side), as MediaPipe does.
    """

    size = 64

    def __init__(self, num_threads: int = 1):
        self._model = _Model("iris", num_threads)

    def __call__(self, image: np.ndarray, dense) -> np.ndarray:
        p = np.asarray(dense, dtype=np.float64)[:, :2]
        n = self.size
        out = np.zeros((2, 5, 2))
        for e, ((a, b), mirror) in enumerate(zip(MESH_EYE_CORNERS, (False, True))):
            d = p[b] - p[a]
            side = 2.3 * float(max(abs(d[0]), abs(d[1]), 1e-6))
            chip, A = similarity_chip(image, (p[a] + p[b]) / 2, n / side, float(np.arctan2(d[1], d[0])), n)
            if mirror:
                chip = np.ascontiguousarray(chip[:, ::-1])
            res = self._model.run(chip.astype(np.float32)[None] / 255.0)
            iris = _pick(res, 15).reshape(5, 3)[:, :2].astype(np.float64)
            if mirror:
                iris[:, 0] = n - iris[:, 0]
            out[e] = apply_affine(invert_affine(A), iris)
        return out.astype(np.float32)
