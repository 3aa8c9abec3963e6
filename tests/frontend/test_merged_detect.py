"""The default detector (issue 28): BlazeFace + dlib HOG candidates, merged and ranked by the Face Mesh.

The five detection cases of the issue, built from licence-clean pictures: the example photos
(public domain), a render of this project's head model (three-quarter view, known landmarks) and
drawn shapes.  References are independent of the code under test: the manual reading of the example
photo mapped through the exact paste / rotate geometry, the render's projected landmark vertices,
and plain dlib HOG (upsample 1, score >= 0) with dlib's own 68-point fit test for the "never drop"
rule.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.frontend import FaceTooSmallError, detect_faces

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _drawings import face_like_drawing  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# manual reading of examples/astronaut.png (test_frontend_detect.MANUAL): pupils, nose tip, mouth corners
MANUAL = np.array([(202.0, 102.0), (245.0, 102.5), (224.0, 126.0), (204.0, 141.0), (245.0, 140.0)])
FACE_WIDTH = 88.0  # dlib's box width of the face in the example photo
IOD = float(np.linalg.norm(MANUAL[1] - MANUAL[0]))


def _paste(canvas, image, scale, at):
    """Paste ``image`` resized by ``scale`` at ``at`` (x, y); returns the manual points there."""
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interp)
    x, y = at
    canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    sx, sy = patch.shape[1] / image.shape[1], patch.shape[0] / image.shape[0]
    return MANUAL * [sx, sy] + [x, y], patch.shape[:2]




def _eye_centres(face):
    lm = face.landmarks
    return np.array([lm[36:42].mean(0), lm[42:48].mean(0)])


def _contains(box, pts, margin=0.0):
    pts = np.atleast_2d(pts)
    return bool(np.all((pts[:, 0] > box[0] - margin) & (pts[:, 0] < box[2] + margin)
                       & (pts[:, 1] > box[1] - margin) & (pts[:, 1] < box[3] + margin)))


def _iou(a, b):
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def plain_dlib_faces_that_fit(image):
    """Boxes of plain dlib HOG (upsample 1, score >= 0) whose dlib 68-point fit passes dlib's own
    flip test (<= 2 % of the eye distance): the faces the issue says must never be dropped."""
    import dlib

    from digitaltwin_jax.frontend import CoarseToFinePredictor, DetectionConfig, DlibShapePredictor

    rects, scores, _ = dlib.get_frontal_face_detector().run(np.ascontiguousarray(image), 1, 0.0)
    pred = CoarseToFinePredictor(DlibShapePredictor())
    out = []
    for r in rects:
        box = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float32)
        if pred.predict_with_consistency(image, box)[1] <= DetectionConfig().max_inconsistency:
            out.append(box)
    return out


def assert_never_drops_plain_dlib(image, faces):
    for box in plain_dlib_faces_that_fit(image):
        assert any(_iou(box, f.box) > 0.3 or _contains(box, f.landmarks[[36, 45, 30]]) for f in faces), box


@pytest.fixture(scope="module")
def astronaut_rgb():
    return np.asarray(Image.open(EXAMPLES / "astronaut.png").convert("RGB")).copy()


@pytest.fixture(scope="module")
def three_quarter_render():
    """A render of a random head of our model at yaw -40 degrees (clean, 384 px) and its projected
    68 landmark vertices (corner-origin pixels)."""
    import dataclasses

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry
    from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer
    from digitaltwin_jax.synth.multiview import MultiViewConfig, multiview_scenes
    from digitaltwin_jax.synth.shapes import GaussianIdentitySource

    m = load_head_model("low")
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 256)
    bank = procedural_bank(geom, 2, seed=3)
    cfg = MultiViewConfig(heads=1, seed=7, yaws_deg=(-40.0,), yaw_jitter_deg=0.0, max_roll_pitch_deg=2.0,
                          image_size=384)
    ds = cfg.dataset_config()
    clean = dataclasses.replace(ds.scene.post, noise_sigma=(0.0, 0.0), blur_sigma=(0.0, 0.0), jpeg_probability=0.0)
    ds = dataclasses.replace(ds, scene=dataclasses.replace(ds.scene, expressions=False, post=clean))
    (scene,) = multiview_scenes(0, cfg, ds, GaussianIdentitySource(m), m, len(bank))
    res = SceneRenderer(m, bank, RenderConfig(eyes="eyeballs", ao_directions=8)).render(scene)
    return res.image, np.asarray(res.landmarks, np.float64)


BOTH = ["mediapipe", "dlib"]


@pytest.mark.parametrize("route", BOTH)
def test_two_people_one_turned_three_quarters(astronaut_rgb, three_quarter_render, route):
    render, truth = three_quarter_render
    s = 1.6  # the turned face is the larger one, as in the photo
    big = cv2.resize(render, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    canvas = np.full((700, 512 + 40 + big.shape[1], 3), 128, np.uint8)
    canvas[:512, :512] = astronaut_rgb
    canvas[60 : 60 + big.shape[0], 552 : 552 + big.shape[1]] = big
    truth = truth * s + [552, 60]
    faces = detect_faces(canvas, landmarks=route)
    assert len(faces) == 2
    turned = [f for f in faces if _contains(f.box, truth[[36, 45, 30]], margin=20)]
    frontal = [f for f in faces if _contains(f.box, MANUAL[:3])]
    assert len(turned) == 1 and len(frontal) == 1
    w = np.linalg.norm(truth[36] - truth[45])
    err = np.linalg.norm(turned[0].landmarks - truth, axis=1)[17:].mean() / w  # inner points; the jaw is a silhouette
    # measured 2.7 % (mediapipe: the mapping on a render like its training renders) and 4.6 % (dlib)
    assert err < {"mediapipe": 0.08, "dlib": 0.12}[route], err
    np.testing.assert_allclose(_eye_centres(frontal[0]), MANUAL[:2], atol=0.15 * IOD)
    assert_never_drops_plain_dlib(canvas, faces)


@pytest.fixture(scope="module")
def low_contrast_scene(astronaut_rgb):
    """1024 x 817 grayscale canvas with clutter, the face-like drawing (large) and the example face
    pasted ~85 px wide at 40 % of its contrast."""
    rng = np.random.default_rng(1)
    h, w = 1024, 817
    c = np.full((h, w), 120, np.float32) + rng.normal(0, 6, (h, w))
    for _ in range(40):
        x, y, col = int(rng.integers(0, w)), int(rng.integers(0, h)), float(rng.uniform(30, 220))
        if rng.integers(2):
            cv2.rectangle(c, (x, y), (x + int(rng.integers(10, 150)), y + int(rng.integers(10, 150))), col, -1)
        else:
            cv2.circle(c, (x, y), int(rng.integers(5, 60)), col, -1)
    face_like_drawing(c, 220, 300, 130)
    gray = cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = 0.4 * (gray - gray.mean()) + 120.0
    x0, y0, x1, y1 = 120, 30, 330, 230
    scale = 85.0 / FACE_WIDTH
    patch = cv2.resize(gray[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    px, py = 500, 640
    c[py : py + patch.shape[0], px : px + patch.shape[1]] = patch
    truth = (MANUAL - [x0, y0]) * (patch.shape[1] / (x1 - x0), patch.shape[0] / (y1 - y0)) + [px, py]
    return np.repeat(np.clip(c, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2), truth


# The drawing: every detector (BlazeFace 0.85-0.9, dlib HOG 1.6), the mesh (presence 1.0) and dlib's
# 5-point model's mirror test (0.7-2.0 %) accept it; only dlib's 68-point model's mirror test rejects
# it (3.4-4.2 % against 0.6-1.7 % on the real faces here), and that model is non-commercial.  Nothing
# commercially usable that we tried (mesh presence logit, mesh mirror test, iris size, shading against
# the mesh's normals, identity-embedding distances) separates it from real three-quarter, small or
# low-contrast faces (docs/packages/frontend.md): on the MediaPipe route it is returned first.
_NO_DRAWING_TEST = pytest.mark.xfail(strict=True, reason="mediapipe route: no commercially usable test "
                                     "tells the face-like drawing from a real face (see the comment above)")
ROUTES = ["dlib", pytest.param("mediapipe", marks=_NO_DRAWING_TEST)]


@pytest.mark.parametrize("route", ["mediapipe", "dlib"])
def test_low_contrast_grayscale_85px_face_is_found(low_contrast_scene, route):
    img, truth = low_contrast_scene
    faces = detect_faces(img, landmarks=route)
    real = [f for f in faces if _contains(f.box, truth[:3])]
    assert len(real) == 1, [f.box for f in faces]
    iod = np.linalg.norm(truth[1] - truth[0])
    np.testing.assert_allclose(_eye_centres(real[0]), truth[:2], atol=0.2 * iod)
    assert_never_drops_plain_dlib(img, faces)


@pytest.mark.parametrize("route", ROUTES)
def test_low_contrast_grayscale_85px_face_beats_the_drawing(low_contrast_scene, route):
    img, truth = low_contrast_scene
    faces = detect_faces(img, landmarks=route)
    assert _contains(faces[0].box, truth[:3]), [f.box for f in faces]


@pytest.mark.parametrize("route", ROUTES)
def test_face_like_drawing_does_not_win(astronaut_rgb, route):
    canvas = np.full((700, 900), 200, np.uint8)
    face_like_drawing(canvas, 250, 330, 220, ink=40, paper=230)  # 350 px wide, larger than the face
    canvas = np.repeat(canvas[:, :, None], 3, axis=2)
    truth, _ = _paste(canvas, astronaut_rgb[20:260, 110:340], 1.3, (560, 200))
    truth = truth + (np.array([-110, -20]) * 1.3)  # the crop's offset, scaled
    faces = detect_faces(canvas, landmarks=route)
    assert _contains(faces[0].box, truth[:3]), [(f.box, f.score) for f in faces]
    np.testing.assert_allclose(_eye_centres(faces[0]), truth[:2], atol=0.15 * 1.3 * IOD)
    assert_never_drops_plain_dlib(canvas, faces)


@pytest.mark.parametrize("route", BOTH)
def test_40px_face(astronaut_rgb, route):
    canvas = np.full((960, 1280, 3), 110, np.uint8)
    s = 40.0 / FACE_WIDTH
    truth, _ = _paste(canvas, astronaut_rgb, s, (700, 500))
    with pytest.raises(FaceTooSmallError, match="minimum is 32 px"):  # found, and said to be too small
        detect_faces(canvas, landmarks=route)
    faces = detect_faces(canvas, landmarks=route, min_eye_distance=0)
    assert len(faces) >= 1 and _contains(faces[0].box, truth[:3], margin=4)
    np.testing.assert_allclose(_eye_centres(faces[0]), truth[:2], atol=0.25 * s * IOD)
    assert_never_drops_plain_dlib(canvas, faces)


@pytest.mark.parametrize("route", BOTH)
def test_30_degree_roll(astronaut_rgb, route):
    canvas = np.full((800, 800, 3), 128, np.uint8)
    canvas[144:656, 144:656] = astronaut_rgb
    M = cv2.getRotationMatrix2D((400.0, 400.0), 30, 1.0)  # OpenCV: pixel centres at integers
    rolled = cv2.warpAffine(canvas, M, (800, 800), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128))
    truth = (MANUAL + 144 - 0.5) @ M[:, :2].T + M[:, 2] + 0.5
    faces = detect_faces(rolled, landmarks=route)
    assert len(faces) == 1
    f = faces[0]
    np.testing.assert_allclose(_eye_centres(f), truth[:2], atol=0.12 * IOD)
    np.testing.assert_allclose(f.landmarks[[48, 54]], truth[3:], atol=0.2 * IOD)
    np.testing.assert_allclose(f.irises[:, 0], truth[:2], atol=0.1 * IOD)
    d = f.landmarks[45] - f.landmarks[36]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(-30.0, abs=4.0)  # the eye line rolled -30
    assert_never_drops_plain_dlib(rolled, faces)


@pytest.mark.parametrize("route", BOTH)
def test_faces_carry_dense_points_and_irises(astronaut_rgb, route):
    import pickle

    f = detect_faces(astronaut_rgb, landmarks=route)[0]
    assert f.dense.shape == (468, 2) and f.dense.dtype == np.float32
    assert f.irises.shape == (2, 5, 2) and f.irises.dtype == np.float32
    g = pickle.loads(pickle.dumps(f))  # crosses the helper process
    np.testing.assert_array_equal(g.dense, f.dense)
    np.testing.assert_array_equal(g.irises, f.irises)
    np.testing.assert_allclose(f.irises[:, 0], MANUAL[:2], atol=0.06 * IOD)


def test_landmark_routes_agree_on_the_example_photo(astronaut_rgb):
    from digitaltwin_jax.frontend import normalised_mean_error

    mp = detect_faces(astronaut_rgb, landmarks="mediapipe")[0]
    dl = detect_faces(astronaut_rgb, landmarks="dlib")[0]
    assert mp.dense is not None and dl.dense is not None
    # the two routes are independent models: measured 3.9 % (68 points)
    assert normalised_mean_error(mp.landmarks, dl.landmarks) < 6.0
    np.testing.assert_allclose(_eye_centres(mp), MANUAL[:2], atol=0.1 * IOD)
    with pytest.raises(ValueError, match="landmarks must be one of"):
        detect_faces(astronaut_rgb, landmarks="ibug")
