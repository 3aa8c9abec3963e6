"""MediaPipe backend (issue 28): anchors and decoding against hand computations, the shipped files against
their recorded checksums, and the models' points on real photos against independent references (the
manual reading of the example photo, dlib's 68-point model, exact rotations)."""
from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitaltwin_jax.frontend.mediapipe_models import (
    BLAZEFACE,
    BlazeFace,
    FaceMesh,
    IrisModel,
    blazeface_anchors,
    decode_boxes,
    mesh_roi_from_keypoints,
    mesh_roi_from_points,
    model_file,
    weighted_nms,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# manual reading of examples/astronaut.png (test_frontend_detect.MANUAL): pupils, nose tip, mouth corners
PUPILS = np.array([(202.0, 102.0), (245.0, 102.5)])
MOUTH = np.array([(204.0, 141.0), (245.0, 140.0)])
IOD = float(np.linalg.norm(PUPILS[1] - PUPILS[0]))  # 43 px


def test_short_range_anchors_by_hand():
    a = blazeface_anchors(BLAZEFACE["short"])
    assert a.shape == (896, 2)  # 16 x 16 cells x 2 + 8 x 8 cells x 6
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])  # two anchors per cell on the stride-8 layer
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # then the next cell along x
    np.testing.assert_allclose(a[32], [0.5 / 16, 1.5 / 16])  # next row after 16 cells x 2
    np.testing.assert_allclose(a[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))  # 3 layers x 2 on stride 16
    np.testing.assert_allclose(a[518], [1.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_full_range_anchors_by_hand():
    a = blazeface_anchors(BLAZEFACE["full"])
    assert a.shape == (2304, 2)  # 48 x 48, one anchor per cell
    np.testing.assert_allclose(a[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(a[48], [0.5 / 48, 1.5 / 48])
    np.testing.assert_allclose(a[2303], [47.5 / 48, 47.5 / 48])


def test_decode_by_hand():
    raw = np.zeros((2, 16))
    raw[0, :4] = [12.8, -6.4, 32.0, 16.0]  # centre +0.1, -0.05; size 0.25 x 0.125 (of 128 px)
    raw[0, 4:6] = [-12.8, 0.0]  # first keypoint 0.1 left of the anchor
    anchors = np.array([[0.25, 0.5], [0.75, 0.75]])
    boxes, kps, scores = decode_boxes(raw, np.array([0.0, 1000.0]), anchors, 128)
    np.testing.assert_allclose(boxes[0], [0.35 - 0.125, 0.45 - 0.0625, 0.35 + 0.125, 0.45 + 0.0625])
    np.testing.assert_allclose(kps[0, 0], [0.15, 0.5])
    np.testing.assert_allclose(kps[0, 1:], np.tile(anchors[0], (5, 1)))
    np.testing.assert_allclose(boxes[1], [0.75, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(scores, [0.5, 1.0])  # sigmoid(0); logit clipped to 100


def test_weighted_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.stack([np.full((6, 2), v) for v in (0.0, 3.0, 9.0)])
    b, k, s = weighted_nms(boxes, kps, np.array([0.9, 0.6, 0.7]), 0.3)
    assert len(s) == 2
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[0], [0.4, 0, 10.4, 10])  # (0.9 * 0 + 0.6 * 1) / 1.5
    np.testing.assert_allclose(k[0], np.full((6, 2), 1.2))
    np.testing.assert_allclose(b[1], boxes[2])


def test_shipped_files_match_their_record():
    folder = files("digitaltwin_jax") / "assets" / "mediapipe"
    record = json.loads((folder / "SOURCE.json").read_text())
    assert record["source_wheel"].startswith("mediapipe-0.10.21-")
    for name, meta in record["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == meta["bytes"] and hashlib.sha256(data).hexdigest() == meta["sha256"], name
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "Apache License, Version 2.0" in (folder / "NOTICE").read_text()
    for kind in ("short", "full", "mesh", "iris"):
        assert model_file(kind).endswith(".tflite")
    with pytest.raises(ValueError, match="unknown MediaPipe model"):
        model_file("hands")


@pytest.fixture(scope="module")
def models():
    return BlazeFace("short"), BlazeFace("full"), FaceMesh(), IrisModel()


@pytest.mark.parametrize("kind", [0, 1])
def test_blazeface_on_the_example_photo(astronaut, models, kind):
    d = models[kind](astronaut)
    assert len(d) == 1 and d.scores[0] > 0.8
    # BlazeFace's keypoints are coarse (they only place the mesh's crop): eye keypoints within 20 % of
    # the interpupil distance of the manual pupils (measured up to 14 %), mouth keypoint near the
    # middle of the manual mouth corners
    np.testing.assert_allclose(d.keypoints[0, :2], PUPILS, atol=0.2 * IOD)
    np.testing.assert_allclose(d.keypoints[0, 3], MOUTH.mean(0), atol=0.25 * IOD)
    b = d.boxes[0]
    assert b[0] < PUPILS[0, 0] and b[2] > PUPILS[1, 0] and b[1] < PUPILS[0, 1] and b[3] > MOUTH[0, 1]


def _mesh(models, image):
    d = models[1](image)
    dense, presence = models[2](image, *mesh_roi_from_keypoints(d.boxes[0], d.keypoints[0]))
    return models[2](image, *mesh_roi_from_points(dense))


# MediaPipe mesh index <-> iBUG 68 index of the same anatomical point (outer / inner eye corners,
# mouth corners, chin); the nose tip is left out (MediaPipe's sits 10-20 % of the eye distance from dlib's 30)
PAIRS = [(33, 36), (133, 39), (362, 42), (263, 45), (61, 48), (291, 54), (152, 8)]


def test_mesh_agrees_with_dlib_68_on_real_photos(astronaut, models, reference_face):
    from PIL import Image

    from digitaltwin_jax.frontend import FaceDetectorPipeline

    cases = [(astronaut, reference_face.landmarks)]
    grace = np.asarray(Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB"))
    cases.append((grace, FaceDetectorPipeline()(grace)[0].landmarks))  # dlib HOG + 68, not MediaPipe
    for image, lm in cases:
        dense, presence = _mesh(models, image)
        assert dense.shape == (468, 3) and dense.dtype == np.float32 and presence > 0.99
        w = np.linalg.norm(lm[36] - lm[45])
        err = [np.linalg.norm(dense[a, :2] - lm[b]) / w for a, b in PAIRS]
        # measured 0.8-5.8 % per point, 1.6 / 3.5 % mean; the two models' conventions differ a little
        assert np.mean(err) < 0.06 and max(err) < 0.10, np.round(err, 3)


def test_irises_on_the_manual_pupils(astronaut, models):
    dense, _ = _mesh(models, astronaut)
    irises = models[3](astronaut, dense)
    assert irises.shape == (2, 5, 2) and irises.dtype == np.float32
    np.testing.assert_allclose(irises[:, 0], PUPILS, atol=0.06 * IOD)  # measured 1.9 px (0.04)
    r = np.linalg.norm(irises[:, 1:] - irises[:, :1], axis=-1)
    # an iris-sized circle: radius ~5.9 mm (11.7 mm diameter) for a ~63 mm interpupil distance = 0.093
    assert np.all((r > 0.07 * IOD) & (r < 0.13 * IOD)), r / IOD


def test_mesh_follows_a_30_degree_roll(astronaut, models):
    dense, _ = _mesh(models, astronaut)
    c = (256.0, 256.0)
    M = cv2.getRotationMatrix2D(c, 30, 1.0)  # pixel-centre convention: shift by 0.5 around it
    rolled = cv2.warpAffine(astronaut, M, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    dense_r, presence = _mesh(models, rolled)
    expected = (dense[:, :2] - 0.5) @ M[:, :2].T + M[:, 2] + 0.5
    w = np.linalg.norm(dense[263, :2] - dense[33, :2])
    err = np.linalg.norm(dense_r[:, :2] - expected, axis=1).mean() / w
    assert presence > 0.99 and err < 0.03, err  # measured 0.6 %
