"""Shared fixtures for the front-end tests: the example photo and one loaded dlib detector."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8, read with Pillow directly (independent of read_image)."""
    return np.asarray(Image.open(EXAMPLE).convert("RGB")).copy()


@pytest.fixture(scope="session")
def detector():
    """The dlib pipeline (HOG boxes + 68-point model): the tests that use it test that pipeline, and
    its landmarks are the independent reference for the MediaPipe route's."""
    from digitaltwin_jax.frontend import FaceDetectorPipeline

    return FaceDetectorPipeline()


@pytest.fixture(scope="session")
def reference_face(astronaut, detector):
    from digitaltwin_jax.frontend import detect_faces

    faces = detect_faces(astronaut, detector=detector)
    assert len(faces) == 1
    return faces[0]
