"""The default face detector: BlazeFace and dlib HOG candidates, merged and ranked by the Face Mesh (issue 28).

Every candidate box, from either detector, is handed to MediaPipe's 468-point Face Mesh (run twice:
from the detector's crop, then from the first mesh's own crop, as MediaPipe's tracking does), so all
candidates end up described the same way: dense points and the mesh's face-presence probability.
Candidates whose meshes overlap are one face.  Then:

* **kept**: a face whose mesh presence is at least ``min_presence`` ("its landmarks fit"), and, on the
  ``"dlib"`` landmark route, also every HOG face (score >= ``hog_min_score``, 0 = dlib's own default)
  whose 68-point flip inconsistency is at most ``max_inconsistency`` (the fit test of
  :mod:`.pipeline`).  So a face that dlib HOG finds and whose landmarks fit is never dropped, and a
  real face found by only one of the two detectors comes back;
* **dropped**: candidates that fit by neither test, when at least one candidate fits (when none does,
  all are returned and :func:`~.api.detect_faces` reports them, as before);
* **order**: faces that pass a mirror test first (a landmark model run on the face and on its mirror
  image agrees with itself within ``max_inconsistency`` % of the eye distance: clear, roughly frontal
  faces), then the others; largest box first within each group.  ``--face-index 0`` is therefore the
  largest clearly seen face; a face-like drawing (which every detector and the mesh accept) or a
  face turned three-quarters comes after it.  Nothing is dropped by this test.

Candidates, in the order they are searched:

1. BlazeFace short range and full range on the whole photo (letterboxed into the model's square);
2. on photos whose longer side is at least ``tile_from`` pixels, full range on a 3 x 3 grid of
   overlapping half-size tiles (faces down to ~15 px on a 2048 px photo);
3. dlib HOG through :class:`~.pipeline.FaceDetectorPipeline`'s coarse-to-fine search (scores down to
   ``hog_min_score``).

The 68 points of each face come from the route chosen by ``landmarks``: ``"mediapipe"`` (the dense
points through :class:`~.dense68.Dense68`, a mapping learned on renders with known landmarks;
commercially usable) or ``"dlib"`` (dlib's 68-point predictor on the face's box; iBUG 300-W licence,
non-commercial).  The irises come from MediaPipe's iris model on the mesh's eye corners.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from digitaltwin_jax.frontend.pipeline import DetectionConfig
from digitaltwin_jax.frontend.types import LANDMARK_ROUTES, Face

__all__ = ["MergedConfig", "MergedDetector", "dlib_like_box", "five_point_inconsistency"]


@dataclass(frozen=True)
class MergedConfig:
    """Options of :class:`MergedDetector`.

    Attributes:
      landmarks: where the 68 points come from: ``"mediapipe"`` (dense points mapped, Apache-2.0 models
        and our own mapping) or ``"dlib"`` (dlib's predictor; non-commercial licence).
      min_presence: Face Mesh presence probability at or above which a candidate is a face (MediaPipe: 0.5).
      hog_min_score: dlib HOG detections below this score are not candidates (dlib's default 0).
      max_inconsistency: ``"dlib"`` route: HOG faces whose 68-point flip inconsistency (% of the eye
        distance) is at most this are kept whatever the mesh says.
      dedupe_iou: candidates whose dense-point boxes overlap more than this are one face.
      tile_from: longer side (pixels) from which BlazeFace also searches half-size tiles.
      irises: also run the iris model (``Face.irises``).
      hog: the HOG search (:class:`~.pipeline.DetectionConfig`).
    """

    landmarks: str = "mediapipe"
    min_presence: float = 0.5
    hog_min_score: float = 0.0
    max_inconsistency: float = 2.0
    dedupe_iou: float = 0.5
    tile_from: int = 1024
    irises: bool = True
    hog: DetectionConfig = field(default_factory=DetectionConfig)

    def __post_init__(self):
        if self.landmarks not in LANDMARK_ROUTES:
            raise ValueError(f"landmarks must be one of {LANDMARK_ROUTES}; got {self.landmarks!r}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1]; got {self.min_presence}")
        if not 0.0 < self.dedupe_iou < 1.0:
            raise ValueError(f"dedupe_iou must be in (0, 1); got {self.dedupe_iou}")


@dataclass
class _Candidate:
    source: str  # "short", "full", "hog"
    box: np.ndarray  # (4,) detector box, input pixels
    score: float  # detector score
    dense: np.ndarray  # (468, 3) mesh points
    presence: float
    hog_score: float = -np.inf
    hog_box: np.ndarray | None = None


class MergedDetector:
    """``detector(image (H, W, 3) uint8) -> list[Face]``: clearly seen faces first, then the others,
    largest box first within each group (see the module docstring).

    Every :class:`~.types.Face` has ``landmarks (68, 2)``, ``dense (468, 2)`` and (with
    ``config.irises``) ``irises (2, 5, 2)``, all in input-image pixels; ``score`` is the Face Mesh
    presence probability in [0, 1].

    Args:
      config: :class:`MergedConfig`.
      hog: the HOG candidate search (default: :class:`~.pipeline.FaceDetectorPipeline` with dlib HOG
        at ``config.hog_min_score``); None-like objects are not accepted: pass ``hog=False`` to use
        BlazeFace alone.
      dlib68: the ``"dlib"`` route's 68-point predictor (default dlib's, coarse-to-fine).
    """

    ordered = True  # detect_faces keeps this detector's order (see the module docstring)
    looks_for = "faces up to about three-quarter view, any roll,"  # NoFaceError's hint

    def __init__(self, config: MergedConfig = MergedConfig(), *, hog=None, dlib68=None):
        from digitaltwin_jax.frontend.mediapipe_models import BlazeFace, FaceMesh, IrisModel

        self.config = config
        self.short = BlazeFace("short")
        self.full = BlazeFace("full")
        self.mesh = FaceMesh()
        self.iris = IrisModel() if config.irises else None
        self._dlib68 = dlib68
        if config.landmarks == "dlib" and dlib68 is None:
            from digitaltwin_jax.frontend.dlib_models import DlibShapePredictor
            from digitaltwin_jax.frontend.refine import CoarseToFinePredictor

            self._dlib68 = CoarseToFinePredictor(DlibShapePredictor())
        if hog is None:
            from digitaltwin_jax.frontend.dlib_models import HogBoxDetector
            from digitaltwin_jax.frontend.pipeline import FaceDetectorPipeline

            hog = FaceDetectorPipeline(HogBoxDetector(min_score=config.hog_min_score),
                                       landmark_predictor=self._dlib68 or _NoLandmarks(), config=config.hog)
        self.hog = hog or None
        self._dense68 = None
        self._five_point = None
        if config.landmarks == "mediapipe":
            from digitaltwin_jax.frontend.dense68 import Dense68

            self._dense68 = Dense68.load()

    def smallest_detectable(self, image_size) -> float:
        """Smallest face box (input pixels) the HOG search reaches (BlazeFace reaches about as far)."""
        return self.hog.smallest_detectable(image_size) if hasattr(self.hog, "smallest_detectable") else 30.0

    # -- candidates ---------------------------------------------------------------------------------
    def blazeface(self, image: np.ndarray):
        """BlazeFace detections of the whole photo and, on large photos, of half-size tiles."""
        from digitaltwin_jax.frontend.mediapipe_models import Detections

        h, w = image.shape[:2]
        found = [self.short(image), self.full(image)]
        kinds = ["short"] * len(found[0]) + ["full"] * len(found[1])
        if max(h, w) >= self.config.tile_from:
            side = max(h, w) / 2.0
            for y0 in _starts(h, side):
                for x0 in _starts(w, side):
                    d = self.full(image, (x0, y0, side))
                    found.append(d)
                    kinds += ["full"] * len(d)
        return Detections.concatenate(found), kinds

    def candidates(self, image: np.ndarray, fitted: dict | None = None) -> list[_Candidate]:
        """Every candidate with its mesh (before merging); ``fitted`` receives the dlib 68-point fits
        the HOG search computed on the way (``{box bytes: (landmarks, inconsistency)}``).

        BlazeFace detections overlapping a better-scored one (IoU > 0.3, e.g. the same face seen in
        two tiles) are not meshed again; a HOG box that matches an already meshed face (IoU > 0.5
        with its dlib-like box) joins that face instead of being meshed again.
        """
        from digitaltwin_jax.frontend.mediapipe_models import mesh_roi_from_keypoints

        out = []
        dets, kinds = self.blazeface(image)
        order = np.argsort(-dets.scores, kind="stable")
        taken: list[np.ndarray] = []
        for i in order:
            b = dets.boxes[i]
            if any(_iou(b, t) > 0.3 for t in taken):
                continue
            taken.append(b)
            dense, presence = self._mesh(image, *mesh_roi_from_keypoints(b, dets.keypoints[i]))
            out.append(_Candidate(kinds[i], b, float(dets.scores[i]), dense, presence))
        fitted = {} if fitted is None else fitted
        if self.hog is not None:
            boxes, scores = (self.hog._search(image, fitted) if hasattr(self.hog, "_search")
                             else self.hog(image))
            meshed = [dlib_like_box(c.dense[:, :2]) for c in out]
            for b, s in zip(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores).reshape(-1)):
                match = [k for k, m in enumerate(meshed) if _iou(b, m) > 0.5]
                if match:
                    c = out[match[0]]
                    dense, presence = c.dense, c.presence
                else:
                    ctr = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2 + 0.05 * (b[3] - b[1])])
                    dense, presence = self._mesh(image, ctr, 1.7 * float(max(b[2] - b[0], b[3] - b[1])), 0.0)
                out.append(_Candidate("hog", b, float(s), dense, presence, hog_score=float(s), hog_box=b))
        return out

    def _mesh(self, image, center, side, angle):
        from digitaltwin_jax.frontend.mediapipe_models import mesh_roi_from_points

        dense, _ = self.mesh(image, center, side, angle)
        return self.mesh(image, *mesh_roi_from_points(dense))

    # -- merging -------------------------------------------------------------------------------------
    def __call__(self, image: np.ndarray) -> list[Face]:
        fitted: dict = {}  # dlib 68-point fits of this call, by box
        cands = self.candidates(image, fitted)
        if not cands:
            return []
        faces = _merge(cands, self.config.dedupe_iou)
        cfg = self.config
        fits = []
        for f in faces:
            ok = f.presence >= cfg.min_presence
            if not ok and cfg.landmarks == "dlib" and f.hog_box is not None and f.hog_score >= cfg.hog_min_score:
                ok = self._dlib_fit(image, f.hog_box, fitted)[1] <= cfg.max_inconsistency
            fits.append(ok)
        chosen = [f for f, ok in zip(faces, fits) if ok] or faces
        result = [self._face(image, f, fitted) for f in chosen]
        area = [-r.area for r in result]
        if len(result) > 1:  # the mirror test only orders faces; it never drops one
            steady = [self.inconsistency(image, f, fitted) <= cfg.max_inconsistency for f in chosen]
            order = sorted(range(len(result)), key=lambda i: (not steady[i], area[i]))
        else:
            order = [0]
        return [result[i] for i in order]

    def inconsistency(self, image: np.ndarray, c: _Candidate, fitted: dict | None = None) -> float:
        """Mirror test of a candidate, % of the eye distance: on the ``"dlib"`` route the 68-point flip
        inconsistency of :class:`~.refine.CoarseToFinePredictor`; on the ``"mediapipe"`` route that of
        dlib's public-domain 5-point model, on a chip made upright by the mesh's eye line.

        Measured on 13 real photos: clear frontal faces 0.2-1.5 (5 points) and 0.9-2.2 (68 points;
        3.6 on the HOG box of the Grace Hopper portrait); face-like drawings 0.7-2.8 (5 points: the
        5-point test does not reject them) and 3.0-4.2 (68 points); three-quarter, tilted or small real
        faces 3-8 on both, so the test orders faces and never drops one.
        """
        if self.config.landmarks == "dlib":
            box = c.hog_box if c.hog_box is not None else dlib_like_box(c.dense[:, :2])
            return float(self._dlib_fit(image, box, {} if fitted is None else fitted)[1])
        return five_point_inconsistency(image, c.dense[:, :2], self._five())

    def _five(self):
        if self._five_point is None:
            from digitaltwin_jax.frontend.dlib_models import DlibFivePointPredictor

            self._five_point = DlibFivePointPredictor()
        return self._five_point

    def _dlib_fit(self, image, box, fitted: dict):
        key = np.asarray(box, np.float32).tobytes()
        if key not in fitted:
            fitted[key] = self._dlib68.predict_with_consistency(image, np.asarray(box, np.float32))
        return fitted[key]

    def _face(self, image, c: _Candidate, fitted: dict) -> Face:
        dense = c.dense[:, :2]
        box = c.hog_box if c.hog_box is not None else dlib_like_box(dense)
        if self.config.landmarks == "dlib":
            lm = self._dlib_fit(image, box, fitted)[0]
        else:
            lm = self._dense68(dense)
        irises = self.iris(image, dense) if self.iris is not None else None
        return Face(box, lm, c.presence, dense=dense, irises=irises)


def five_point_inconsistency(image: np.ndarray, dense, predictor) -> float:
    """Flip inconsistency (% of the eye-corner distance) of a 5-point predictor on the face of ``dense``.

    The face is cut into a 300-pixel chip, upright (rotated by the mesh's eye line 33 -> 263) with the
    eye-corner distance at 100 pixels; the predictor runs on the chip and on its mirror image (mapped
    back, partners swapped) and the mean distance of the two results is returned.
    """
    from digitaltwin_jax.frontend.chips import similarity_chip
    from digitaltwin_jax.frontend.dlib_models import FLIP5

    p = np.asarray(dense, np.float64)[:, :2]
    d = p[263] - p[33]
    e = float(np.linalg.norm(d))
    eyes = (p[33] + p[263]) / 2
    n, unit = 300, 100.0
    chip, _ = similarity_chip(image, eyes + 0.63 * (p[0] - eyes), unit / max(e, 1e-6), float(np.arctan2(d[1], d[0])), n)
    half = 0.765 * unit
    box = np.array([n / 2 - half, n / 2 - half, n / 2 + half, n / 2 + half])
    q = np.asarray(predictor(chip, box), np.float64)
    qm = np.asarray(predictor(np.ascontiguousarray(chip[:, ::-1]), np.array([n - box[2], box[1], n - box[0], box[3]])),
                    np.float64)
    qm[:, 0] = n - qm[:, 0]
    return float(100.0 * np.linalg.norm(q - qm[FLIP5], axis=1).mean() / unit)


class _NoLandmarks:
    """Landmark predictor placeholder for the HOG search on the MediaPipe route (never asked for points:
    the search only uses ``predict_with_consistency`` when it exists)."""

    def __call__(self, image, box):  # pragma: no cover - not called by _search
        raise RuntimeError("not used")


def _starts(n: int, side: float) -> list[float]:
    """Window starts covering ``[0, n)`` with windows of ``side`` at half-window steps."""
    if n <= side:
        return [(n - side) / 2.0]
    k = int(np.ceil((n - side) / (side / 2.0)))
    return list(np.linspace(0.0, n - side, k + 1))


def _dense_box(dense) -> np.ndarray:
    p = np.asarray(dense, np.float64)[:, :2]
    return np.concatenate([p.min(0), p.max(0)])


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda q: (q[2] - q[0]) * (q[3] - q[1])  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1e-12)


def _merge(cands: list[_Candidate], iou: float) -> list[_Candidate]:
    """One candidate per face: the best mesh (highest presence) of each group of overlapping meshes,
    carrying the group's best HOG box and score."""
    order = sorted(range(len(cands)), key=lambda i: -cands[i].presence)
    boxes = [_dense_box(c.dense) for c in cands]
    used, out = set(), []
    for i in order:
        if i in used:
            continue
        group = [j for j in order if j not in used and _iou(boxes[i], boxes[j]) > iou]
        used.update(group)
        best = cands[i]
        hogs = [cands[j] for j in group if cands[j].source == "hog"]
        if hogs:
            h = max(hogs, key=lambda c: c.hog_score)
            best = _Candidate(best.source, best.box, best.score, best.dense, best.presence, h.hog_score, h.hog_box)
        out.append(best)
    return out


def dlib_like_box(dense) -> np.ndarray:
    """A dlib-HOG-like square box ``(4,) float32`` from Face Mesh points (for faces BlazeFace found alone).

    Measured on the two example photos against dlib HOG's box: side 1.41 and 1.66 x the distance of
    the mesh's outer eye corners (33, 263), centre 0.65 / 0.61 of the way from the eyes' midpoint to the
    upper lip (mesh point 0).  Used: side 1.53 x, centre at 0.63.
    """
    p = np.asarray(dense, np.float64)[:, :2]
    eyes = (p[33] + p[263]) / 2
    d = float(np.linalg.norm(p[263] - p[33]))
    c = eyes + 0.63 * (p[0] - eyes)
    half = 0.765 * d
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half], np.float32)
