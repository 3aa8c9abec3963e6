"""Scene description of one synthetic render and its random sampling (paper section 3.2 and
supplementary 4.4: random head pose in [-15, 15] degrees of roll, yaw and pitch, random field of
view, lighting condition, environment and texture).

Camera model (documented ranges, :class:`CameraConfig`):

* head rotation ``R_head = Rz(roll) Ry(yaw) Rx(pitch)`` in the head frame (x to the subject's left,
  y up, z out of the face), each angle ``U(-15, 15)`` degrees; the camera rotation is
  ``R = diag(1, -1, -1) R_head`` (OpenCV camera, :func:`digitaltwin_jax.camera.frontal_rotation`);
* horizontal field of view of the (square) image ``U(20, 50)`` degrees, i.e.
  ``f_s = 1 / (2 tan(fov / 2))`` in ``K = intrinsics((H, W), f_s)``;
* face size: the jaw width (landmarks 0-16, about 140 mm) covers ``U(0.35, 0.55)`` of the image
  width, which with the field of view fixes the camera distance ``f_s * jaw / fraction``: about
  0.27 m (50 degrees, large face: an arm's-length selfie) to 1.1 m (20 degrees, small face: a portrait
  lens), so perspective distortion spans what phone selfies and portraits show; the face centre
  (mean of landmarks 17-67) lands within ``+-6 %`` of the image centre.

Each image ``index`` of a data set made with ``seed`` has its own generator, seeded with
:func:`image_seed` ``(seed, index)``, so any image can be re-rendered alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.camera import frontal_rotation, intrinsics_np
from digitaltwin_jax.synth import lighting as lighting_mod
from digitaltwin_jax.synth.backgrounds import BACKGROUND_KINDS, PROCEDURAL_KINDS, PROCEDURAL_WEIGHTS
from digitaltwin_jax.synth.shapes import random_expression

__all__ = [
    "CameraConfig",
    "PostConfig",
    "SceneConfig",
    "Scene",
    "image_seed",
    "euler_to_matrix",
    "matrix_to_euler",
    "sample_scene",
]


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """Random camera (module docstring).

    Attributes:
      max_rotation_deg: bound of the uniform roll, yaw and pitch.
      max_yaw_deg: bound of the uniform yaw when it differs (None: ``max_rotation_deg``).
      fov_deg: range of the horizontal field of view.
      face_width_fraction: range of jaw width / image width.
      center_jitter: face centre offset bound, fraction of the image size.
    """

    max_rotation_deg: float = 15.0
    max_yaw_deg: float | None = None
    fov_deg: tuple[float, float] = (20.0, 50.0)
    face_width_fraction: tuple[float, float] = (0.35, 0.55)
    center_jitter: float = 0.06


@dataclasses.dataclass(frozen=True)
class PostConfig:
    """Camera imperfections applied to the final image.

    Attributes:
      blur_sigma: range of a Gaussian blur (output pixels; lens softness).
      noise_sigma: range of Gaussian sensor noise (fraction of full scale, sRGB).
      jpeg_probability: chance of a JPEG round trip.
      jpeg_quality: range of its quality.
      specular_gain: range of a per-image specular multiplier (matte to oily skin).
    """

    blur_sigma: tuple[float, float] = (0.0, 0.6)
    noise_sigma: tuple[float, float] = (0.0, 0.015)
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 95)
    specular_gain: tuple[float, float] = (0.4, 1.3)


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """What varies between images.

    Attributes:
      image_size: output side in pixels (square images).
      expressions: draw a random expression (off: the paper renders neutral heads).
      albedo_assignment: ``"closest"`` (the closest population subject's map, the paper's rule; falls
        back to random when the shape source has no subjects) or ``"random"``.
      camera, post: see :class:`CameraConfig`, :class:`PostConfig`.
      perturbation: lighting perturbation (:class:`digitaltwin_jax.synth.lighting.Perturbation`).
      photo_background_probability: chance of a photo background when photos are given.
    """

    image_size: int = 256
    expressions: bool = False
    albedo_assignment: str = "closest"
    camera: CameraConfig = CameraConfig()
    post: PostConfig = PostConfig()
    perturbation: lighting_mod.Perturbation = lighting_mod.Perturbation()
    photo_background_probability: float = 0.5

    def __post_init__(self):
        if self.albedo_assignment not in ("closest", "random"):
            raise ValueError(f"albedo_assignment must be 'closest' or 'random', got {self.albedo_assignment!r}")
        if int(self.image_size) < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything needed to render one image (plain arrays and small values).

    Attributes:
      index, seed: data-set index and the image's own seed.
      vertices: ``(V, 3) float32`` head shape in the head frame (mm), expression included.
      identity: ``(K,) float32``; identity_residual: mm RMS (see :class:`~.shapes.ShapeSample`).
      expression: ``(M,) float32`` blendshape weights (zeros when neutral).
      subject, group: closest population subject and its group (-1 when none).
      euler_deg: ``(3,) float32`` roll, yaw, pitch in degrees.
      rotation: ``(3, 3) float32`` camera rotation R (``p_cam = R p + t``).
      translation: ``(3,) float32`` t in mm.
      K: ``(3, 3) float32`` intrinsics of the output image.
      fov_deg: horizontal field of view.
      preset: lighting preset index; lighting: the perturbed :class:`~.lighting.Lighting`.
      albedo: index into the albedo bank.
      background_kind: index into :data:`~.backgrounds.BACKGROUND_KINDS`; background_seed: its seed.
      blur_sigma, noise_sigma, jpeg_quality (0 = none), specular_gain: camera imperfections.
      iris_rgb: ``(3,) float32`` linear iris colour (used with eyeballs).
    """

    index: int
    seed: int
    vertices: np.ndarray
    identity: np.ndarray
    identity_residual: float
    expression: np.ndarray
    subject: int
    group: int
    euler_deg: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    K: np.ndarray
    fov_deg: float
    preset: int
    lighting: lighting_mod.Lighting
    albedo: int
    background_kind: int
    background_seed: int
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    specular_gain: float
    iris_rgb: np.ndarray


def image_seed(seed: int, index: int) -> int:
    """64-bit seed of image ``index`` in a data set made with ``seed`` (numpy SeedSequence spawn key)."""
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    s = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2, np.uint32)
    return int(s[0]) | (int(s[1]) << 32)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def euler_to_matrix(roll_deg, yaw_deg, pitch_deg) -> np.ndarray:
    """Head rotation ``Rz(roll) Ry(yaw) Rx(pitch)`` (head frame), ``(3, 3) float64``."""
    r, y, p = np.deg2rad([roll_deg, yaw_deg, pitch_deg])
    return _rz(r) @ _ry(y) @ _rx(p)


def matrix_to_euler(R) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` for |yaw| < 90 degrees: ``(3,)`` roll, yaw, pitch degrees."""
    R = np.asarray(R, np.float64)
    yaw = np.arcsin(np.clip(-R[2, 0], -1, 1))
    roll = np.arctan2(R[1, 0], R[0, 0])
    pitch = np.arctan2(R[2, 1], R[2, 2])
    return np.rad2deg([roll, yaw, pitch])


# linear iris colours: dark brown, brown, hazel, blue, grey-blue
_IRIS = np.array([[0.08, 0.04, 0.02], [0.15, 0.08, 0.03], [0.1, 0.12, 0.06], [0.12, 0.2, 0.3], [0.05, 0.08, 0.12]],
                 np.float32)


def sample_scene(index: int, seed: int, config: SceneConfig, shape_source, model, bank_size: int,
                 subject_albedo=None, has_photos: bool = False) -> Scene:
    """Draw the scene of image ``index`` (deterministic in ``(seed, index)`` and the inputs).

    Args:
      index, seed: data-set index and seed.
      config: :class:`SceneConfig`.
      shape_source: object with ``sample(rng, index=...) -> ShapeSample`` (:mod:`.shapes`,
        :mod:`.population`).
      model: the :class:`~digitaltwin_jax.model.head_model.HeadModel` (expression basis, landmarks).
      bank_size: number of albedo maps.
      subject_albedo: optional ``(N_subjects,) int`` map index of each population subject (default
        ``subject % bank_size``).
      has_photos: photo backgrounds are available (else every background is procedural).
    """
    s = image_seed(seed, index)
    rng = np.random.default_rng(s)
    # 1. shape
    shape = shape_source.sample(rng, index=int(index))
    v = np.asarray(shape.vertices, np.float32)
    expr = np.zeros(model.expression_basis.shape[0], np.float32)
    if config.expressions:
        expr = random_expression(rng, model.expression_names)
        v = v + np.tensordot(expr, model.expression_basis, axes=1).astype(np.float32)
    # 2. pose
    cam = config.camera
    euler = rng.uniform(-cam.max_rotation_deg, cam.max_rotation_deg, size=3)
    if cam.max_yaw_deg is not None:  # same draws as before, the yaw rescaled: training sets unchanged
        if cam.max_rotation_deg > 0:
            euler[1] *= float(cam.max_yaw_deg) / float(cam.max_rotation_deg)
        else:
            euler[1] = rng.uniform(-cam.max_yaw_deg, cam.max_yaw_deg)
    R = frontal_rotation().astype(np.float64) @ euler_to_matrix(*euler)
    # 3. camera
    size = int(config.image_size)
    fov = float(rng.uniform(*cam.fov_deg))
    fs = 1.0 / (2.0 * np.tan(np.deg2rad(fov) / 2.0))
    K = intrinsics_np((size, size), fs)
    frac = float(rng.uniform(*cam.face_width_fraction))
    lm = v[np.asarray(model.landmark_indices)].astype(np.float64)
    jaw = float(np.linalg.norm(lm[0] - lm[16]))
    depth = fs * jaw / frac
    jitter = rng.uniform(-cam.center_jitter, cam.center_jitter, size=2) * size
    centre_h = lm[17:68].mean(axis=0)
    target = np.array([jitter[0] / K[0, 0] * depth, jitter[1] / K[1, 1] * depth, depth])
    t = target - R @ centre_h
    # 4. lighting
    p_idx = int(rng.integers(len(lighting_mod.PRESETS)))
    light = lighting_mod.perturb(lighting_mod.PRESETS[p_idx], rng, config.perturbation)
    # 5. albedo
    r_albedo = int(rng.integers(bank_size))
    if config.albedo_assignment == "closest" and shape.subject >= 0:
        if subject_albedo is not None:
            albedo = int(np.asarray(subject_albedo)[shape.subject])
        else:
            albedo = int(shape.subject % bank_size)
    else:
        albedo = r_albedo
    # 6. background
    use_photo = rng.random() < config.photo_background_probability
    kind = str(rng.choice(PROCEDURAL_KINDS, p=PROCEDURAL_WEIGHTS))
    bg_kind = BACKGROUND_KINDS.index("photo" if (use_photo and has_photos) else kind)
    bg_seed = int(rng.integers(0, 2**63 - 1))
    # 7. camera imperfections
    post = config.post
    blur = float(rng.uniform(*post.blur_sigma))
    noise = float(rng.uniform(*post.noise_sigma))
    use_jpeg = rng.random() < post.jpeg_probability
    jpeg = int(rng.integers(post.jpeg_quality[0], post.jpeg_quality[1] + 1)) if use_jpeg else 0
    spec = float(rng.uniform(*post.specular_gain))
    iris = _IRIS[int(rng.integers(len(_IRIS)))] * rng.uniform(0.7, 1.3)
    return Scene(
        index=int(index), seed=int(s), vertices=v, identity=np.asarray(shape.identity, np.float32),
        identity_residual=float(shape.identity_residual), expression=expr, subject=int(shape.subject),
        group=int(shape.group), euler_deg=euler.astype(np.float32), rotation=R.astype(np.float32),
        translation=t.astype(np.float32), K=K.astype(np.float32), fov_deg=fov, preset=p_idx,
        lighting=light, albedo=albedo, background_kind=bg_kind, background_seed=bg_seed,
        blur_sigma=blur, noise_sigma=noise, jpeg_quality=jpeg, specular_gain=spec,
        iris_rgb=iris.astype(np.float32),
    )
