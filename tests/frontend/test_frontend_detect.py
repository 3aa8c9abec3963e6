"""detect_faces on the example photo and on every kind of awkward input derived from it.

References are independent of the code under test: a coarse manual reading of the photo (pupils, nose
tip, mouth corners, read off a zoomed pixel grid, +-2 px), and exact geometric transforms (flip,
resize, crop, rotation, EXIF orientation, pasting) applied to the photo and to the landmarks found on
the untouched photo.  Consistency thresholds are about 3x the errors measured when writing the tests.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.frontend import (
    DetectionConfig,
    Face,
    FaceDetector,
    FaceDetectorPipeline,
    FaceTooSmallError,
    HogBoxDetector,
    NoFaceError,
    BoxDetector,
    detect_faces,
    flip_landmarks,
    normalised_mean_error,
)
from digitaltwin_jax.frontend.landmarks68 import LEFT_EYE, RIGHT_EYE
from digitaltwin_jax.io.images import read_image

# Read by eye from a 4x zoom of examples/astronaut.png with a 10 px grid (x = column, y = row).
MANUAL = {"right_pupil": (202.0, 102.0), "left_pupil": (245.0, 102.5), "nose_tip": (224.0, 126.0),
          "mouth_right": (204.0, 141.0), "mouth_left": (245.0, 140.0)}


def _resize(img, factor):
    h, w = img.shape[:2]
    size = (int(round(w * factor)), int(round(h * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def test_astronaut_against_manual_reading(reference_face):
    f = reference_face
    lm = f.landmarks
    assert f.box[0] < MANUAL["right_pupil"][0] and f.box[2] > MANUAL["left_pupil"][0]
    assert f.box[1] < MANUAL["right_pupil"][1] and f.box[3] > MANUAL["mouth_left"][1]
    np.testing.assert_allclose(lm[RIGHT_EYE].mean(0), MANUAL["right_pupil"], atol=4)
    np.testing.assert_allclose(lm[LEFT_EYE].mean(0), MANUAL["left_pupil"], atol=4)
    np.testing.assert_allclose(lm[30], MANUAL["nose_tip"], atol=4)
    np.testing.assert_allclose(lm[48], MANUAL["mouth_right"], atol=5)
    np.testing.assert_allclose(lm[54], MANUAL["mouth_left"], atol=5)
    assert lm.dtype == np.float32 and lm.shape == (68, 2)
    assert f.box.dtype == np.float32 and f.box.shape == (4,)
    assert 50 < f.eye_distance < 70


def test_horizontal_flip_consistency(astronaut, reference_face, detector):
    W = astronaut.shape[1]
    faces = detect_faces(np.ascontiguousarray(astronaut[:, ::-1]), detector=detector)
    back = flip_landmarks(faces[0].landmarks, W)
    assert normalised_mean_error(back, reference_face.landmarks) < 1.5


@pytest.mark.parametrize("factor", [2.0, 0.75])
def test_scale_consistency(astronaut, reference_face, detector, factor):
    img = _resize(astronaut, factor)
    faces = detect_faces(img, detector=detector)
    s = img.shape[1] / astronaut.shape[1]
    assert normalised_mean_error(faces[0].landmarks / s, reference_face.landmarks) < 2.0


def test_crop_consistency(astronaut, reference_face, detector):
    x0, y0 = 97, 33
    faces = detect_faces(astronaut[y0 : y0 + 300, x0 : x0 + 300], detector=detector)
    assert normalised_mean_error(faces[0].landmarks + [x0, y0], reference_face.landmarks) < 1.5


def test_in_plane_rotation(astronaut, reference_face, detector):
    # rotate 15 degrees about the nose; map the found landmarks back with the inverse rotation
    M = cv2.getRotationMatrix2D((224.0, 128.0), 15.0, 1.0)  # corner-convention affine
    Mc = M.copy()
    Mc[:, 2] += M[:, :2].sum(1) * 0.5 - 0.5  # OpenCV samples pixel centres at integers
    img = cv2.warpAffine(astronaut, Mc, (512, 512), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    lm = detect_faces(img, detector=detector)[0].landmarks.astype(np.float64)
    Mi = cv2.invertAffineTransform(M)
    assert normalised_mean_error(lm @ Mi[:, :2].T + Mi[:, 2], reference_face.landmarks) < 2.0


def _save_with_orientation(path, pixels, orientation, fmt):
    pil = Image.fromarray(pixels)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(path, format=fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))


def test_exif_rotated_jpeg_gives_landmarks_in_displayed_orientation(tmp_path, astronaut, reference_face, detector):
    # A camera held sideways stores the pixels rotated and tags Orientation=6 ("rotate 90 CW to display").
    stored = np.ascontiguousarray(np.rot90(astronaut, k=1))  # 90 degrees counter-clockwise
    path = tmp_path / "sideways.jpg"
    _save_with_orientation(path, stored, 6, "JPEG")
    img = read_image(path)
    assert img.shape == astronaut.shape
    faces = detect_faces(img, detector=detector)
    assert normalised_mean_error(faces[0].landmarks, reference_face.landmarks) < 2.0


def test_exif_mirrored_image_gives_mirrored_landmarks(tmp_path, astronaut, reference_face, detector):
    path = tmp_path / "mirror.png"
    _save_with_orientation(path, astronaut, 2, "PNG")  # Orientation=2: display mirrored left-right
    faces = detect_faces(read_image(path), detector=detector)
    expected = flip_landmarks(reference_face.landmarks, astronaut.shape[1])
    assert normalised_mean_error(faces[0].landmarks, expected) < 1.5


def test_rgba_gray_and_16bit_files(tmp_path, astronaut, reference_face, detector):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[400:, :100, 3] = 0  # transparent corner away from the face
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    cv2.imwrite(str(tmp_path / "rgb16.png"), astronaut[..., ::-1].astype(np.uint16) * 257)
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    for name, tol in [("rgba.png", 0.5), ("rgb16.png", 0.5), ("gray.png", 2.0), ("gray16.png", 2.0)]:
        img = read_image(tmp_path / name)
        assert img.shape == astronaut.shape and img.dtype == np.uint8
        faces = detect_faces(img, detector=detector)
        assert normalised_mean_error(faces[0].landmarks, reference_face.landmarks) < tol, name
    # arrays straight from other readers are accepted too
    for arr in (gray, rgba, astronaut.astype(np.float32) / 255.0):
        assert normalised_mean_error(detect_faces(arr, detector=detector)[0].landmarks, reference_face.landmarks) < 2.0


class _RecordingBoxes:
    """A BoxDetector that records the size of every image it is given."""

    def __init__(self, inner):
        self.inner, self.window, self.seen = inner, inner.window, []

    def __call__(self, image):
        self.seen.append(image.shape[:2])
        return self.inner(image)


def test_large_photo_detected_on_downscaled_copy(astronaut, reference_face, detector):
    big = _resize(astronaut, 4.0)  # 2048 x 2048, face about 350 px
    spy = _RecordingBoxes(HogBoxDetector())
    assert isinstance(spy, BoxDetector)
    pipe = FaceDetectorPipeline(spy, detector.landmark_predictor)
    faces = detect_faces(big, detector=pipe)
    assert spy.seen == [(512, 512)]  # one coarse pass, nothing at full size
    assert len(faces) == 1
    assert normalised_mean_error(faces[0].landmarks / 4.0, reference_face.landmarks) < 2.0
    np.testing.assert_allclose(faces[0].box / 4.0, reference_face.box, atol=10)


def test_several_faces_largest_first(astronaut, reference_face, detector):
    small = _resize(astronaut, 0.6)  # 307 x 307
    canvas = np.full((512, 512 + 320, 3), 128, np.uint8)
    canvas[:, :512] = astronaut
    canvas[100 : 100 + small.shape[0], 520 : 520 + small.shape[1]] = small
    faces = detect_faces(canvas, detector=detector)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert normalised_mean_error(faces[0].landmarks, reference_face.landmarks) < 1.5
    s = small.shape[1] / 512
    expected = reference_face.landmarks * s + [520, 100]
    assert normalised_mean_error(faces[1].landmarks, expected) < 3.0


def test_tiny_face_raises_too_small_with_minimum(astronaut, reference_face, detector):
    tiny = _resize(astronaut, 0.4)  # eye distance about 24 px
    with pytest.raises(FaceTooSmallError, match=r"minimum is 32 px") as info:
        detect_faces(tiny, detector=detector)
    assert info.value.minimum == 32.0
    assert info.value.size == pytest.approx(0.4 * reference_face.eye_distance, rel=0.15)
    assert isinstance(info.value, ValueError)
    faces = detect_faces(tiny, detector=detector, min_eye_distance=0)  # the caller may accept it
    assert faces[0].eye_distance == pytest.approx(0.4 * reference_face.eye_distance, rel=0.15)


@pytest.mark.parametrize("kind", ["gray", "noise", "no_face_region", "tiny_image"])
def test_no_face(astronaut, detector, kind):
    rng = np.random.default_rng(0)
    img = {
        "gray": np.full((300, 400, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        "no_face_region": astronaut[250:, 300:],  # shoulder and background
        "tiny_image": astronaut[:6, :5],
    }[kind]
    with pytest.raises(NoFaceError, match="no face found") as info:
        detect_faces(img, detector=detector)
    assert "px wide" in str(info.value)


def test_bad_arrays_raise_clear_errors():
    with pytest.raises(TypeError, match="dtype"):
        detect_faces(np.zeros((64, 64, 3), np.int64))
    with pytest.raises(ValueError, match="shape"):
        detect_faces(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        detect_faces(np.full((64, 64, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        detect_faces(np.full((64, 64, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="empty"):
        detect_faces(np.zeros((0, 64, 3), np.uint8))


def test_plugged_in_detector_replaces_the_dlib_one(astronaut):
    class Fixed:
        def __init__(self, faces):
            self.faces = faces

        def __call__(self, image):
            return list(self.faces)

    lm = np.tile([[10.0, 10.0]], (68, 1))
    lm[36], lm[45] = (100, 100), (160, 100)
    small = Face(box=[0, 0, 50, 50], landmarks=lm, score=1.0)
    large = Face(box=[0, 0, 200, 200], landmarks=lm, score=0.5)
    plug = Fixed([small, large])
    assert isinstance(plug, FaceDetector)
    faces = detect_faces(astronaut, detector=plug)
    assert [f.area for f in faces] == [40000.0, 2500.0]  # sorted, largest first
    with pytest.raises(NoFaceError):
        detect_faces(astronaut, detector=Fixed([]))


def test_plugged_in_box_detector_with_shipped_landmarks(astronaut, reference_face, detector):
    class OneBox:
        window = 80.0

        def __call__(self, image):
            s = image.shape[1] / 512.0
            return np.array([reference_face.box], np.float32) * s, np.array([1.0], np.float32)

    pipe = FaceDetectorPipeline(OneBox(), detector.landmark_predictor, DetectionConfig(coarse_side=512))
    faces = detect_faces(astronaut, detector=pipe)
    np.testing.assert_allclose(faces[0].landmarks, reference_face.landmarks, atol=1e-4)


def test_face_validates_its_fields():
    with pytest.raises(ValueError, match="box"):
        Face(box=[10, 10, 5, 20], landmarks=np.zeros((68, 2)), score=0)
    with pytest.raises(ValueError, match="landmarks"):
        Face(box=[0, 0, 5, 5], landmarks=np.zeros((5, 2)), score=0)
