"""identity_embedding: the aligned-chip dlib ResNet embedding and the encoder plug-in point."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitaltwin_jax.frontend import (
    DlibIdentityEncoder,
    Face,
    IdentityEncoder,
    default_encoder,
    detect_faces,
    identity_embedding,
    model_path,
)


@pytest.fixture(scope="module")
def reference_embedding(astronaut, reference_face):
    return identity_embedding(astronaut, reference_face)


def test_embedding_shape_and_agreement_with_plain_dlib(astronaut, reference_embedding, detector):
    import dlib

    e = reference_embedding
    assert e.shape == (128,) and e.dtype == np.float32 and np.all(np.isfinite(e))
    # reference: dlib's own pipeline (its detector box at upsample 1, the raw 68-point model on the
    # full image, dlib's chip extraction inside compute_face_descriptor)
    rect = dlib.get_frontal_face_detector()(astronaut, 1)[0]
    raw = detector.landmark_predictor.base  # the unwrapped dlib model, already loaded
    pts = raw(astronaut, [rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1]) - 0.5
    shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in np.rint(pts)])
    net = dlib.face_recognition_model_v1(model_path("face_recognition"))
    ref = np.asarray(net.compute_face_descriptor(astronaut, shape))
    assert np.linalg.norm(e - ref) < 0.1  # same person threshold is 0.6


def test_embedding_is_stable_under_flip_and_resolution(astronaut, reference_embedding, detector):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    for img, tol in ((flipped, 0.4), (big, 0.15)):
        face = detect_faces(img, detector=detector)[0]
        assert np.linalg.norm(identity_embedding(img, face) - reference_embedding) < tol


def test_embedding_moves_with_the_face(astronaut, reference_face, reference_embedding):
    # the same landmarks shifted onto the background must give a very different vector
    moved = Face(reference_face.box + [0, 300, 0, 300], reference_face.landmarks + [0, 300], 0.0)
    assert np.linalg.norm(identity_embedding(astronaut, moved) - reference_embedding) > 0.6


def test_aligned_chip_is_150_pixels(astronaut, reference_face):
    chip = default_encoder().aligned_chip(astronaut, reference_face)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


def test_plugged_in_encoder(astronaut, reference_face):
    class MeanColour:
        dim = 3

        def __call__(self, image, face):
            x0, y0, x1, y1 = face.box.astype(int)
            return image[y0:y1, x0:x1].reshape(-1, 3).mean(0)

    enc = MeanColour()
    assert isinstance(enc, IdentityEncoder) and isinstance(DlibIdentityEncoder(), IdentityEncoder)
    x0, y0, x1, y1 = reference_face.box.astype(int)
    np.testing.assert_allclose(
        identity_embedding(astronaut, reference_face, encoder=enc),
        astronaut[y0:y1, x0:x1].reshape(-1, 3).mean(0), rtol=1e-6)


def test_bad_inputs(astronaut):
    with pytest.raises(TypeError, match="Face"):
        identity_embedding(astronaut, np.zeros((68, 2)))
    with pytest.raises(ValueError, match="num_jitters"):
        DlibIdentityEncoder(num_jitters=-1)
    with pytest.raises(ValueError, match="unknown model"):
        model_path("nope")
