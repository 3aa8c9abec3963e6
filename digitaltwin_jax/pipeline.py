"""The avatar pipeline: photo -> textured, animatable head (the paper's Fig. 2, test time).

    photo -> front end (box, 68 landmarks, identity embedding)
          -> shape source (regressor, or identity fit inside the Gauss-Newton solve)
          -> non-rigid fit (EPnP, then Gauss-Newton over expression, corrective field, pose, focal)
          -> texture (projection to UV with visibility, bank fill, Poisson blend)
          -> Avatar (arrays) -> files (OBJ/MTL/PNG, GLB with morph targets, preview, report)

Every stage is a plain callable held in :class:`Stages`, so a user swaps one (another detector, the
learned regressor as shape source, another texturer) without touching the others.  No maths here.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from digitaltwin_jax.fitting import FitConfig
    from digitaltwin_jax.texture.pipeline import TextureConfig

__all__ = ["AvatarConfig", "Avatar", "Stages", "default_stages", "reconstruct", "write_avatar", "reconstruct_file",
           "reconstruct_files"]


@dataclasses.dataclass(frozen=True)
class AvatarConfig:
    """Options of :func:`reconstruct`.

    Attributes:
      resolution: head model resolution, ``"low"`` (<= 3,000 vertices, the paper's avatar) or ``"full"``.
      texture_size: side of the square diffuse map in pixels.
      face_index: which detected face (0 = the first of :func:`~digitaltwin_jax.frontend.detect_faces`:
        the largest clearly seen face).
      landmarks: where the 68 landmarks come from: ``"mediapipe"`` (commercially usable models and
        mapping) or ``"dlib"`` (dlib's 68-point model, non-commercial licence); None = the front
        end's :data:`~digitaltwin_jax.frontend.DEFAULT_LANDMARKS`.
      seed: seed of every random choice (texture-bank perturbation).
      shape_source: ``"template"`` (the model's mean head), ``"fit"`` (identity coefficients fitted
        to the landmarks in the Gauss-Newton solve), ``"regressor"`` (the learned decoder, paper
        section 3.3), ``"guarded"`` (the decoder pulled toward the template by its out-of-distribution
        guard, :mod:`digitaltwin_jax.regressor.guard`), ``"calibrated"`` (identity fitted around the
        template plus the regressor's trusted fraction, with the trust and the width calibrated on
        real photos, :mod:`digitaltwin_jax.shape_prior`) or ``"auto"`` (:data:`AUTO_SHAPE_SOURCE`, the
        source the fidelity benchmark's default rule admits; see the docs page "Fidelity").  Every source is
        followed by the non-rigid fit (pose, focal, expression, corrective field).
      template: the template head of the ``"template"`` and ``"calibrated"`` sources, by name
        (:data:`digitaltwin_jax.shape_prior.prior.TEMPLATES`): ``"ict"`` (ICT-FaceKit's mean head),
        ``"pipeline"`` (corrected toward real people as our model and detector see them) or
        ``"people"`` (the same without the detector's own offsets); None = the shipped shape prior's
        default for ``"calibrated"`` and ``"ict"`` for ``"template"``.
      preview_size: side of each preview panel in pixels (``preview.png`` is 5 panels wide).
      same_camera: several photos (issue 16): True = one camera (shared intrinsics), False = each its
        own, None = photos with the same EXIF camera and focal length share them.
      force: several photos: reconstruct them as one person even when their identity embeddings say
        they are different people.
      fit: :class:`~digitaltwin_jax.fitting.FitConfig` of the default fit stage (None = its defaults;
        ``fit_identity`` always follows the shape source: True only for ``"fit"``).
      texture: :class:`~digitaltwin_jax.texture.pipeline.TextureConfig` of the default texture stage
        (None = its defaults; ``size`` always comes from ``texture_size``).
    """

    resolution: str = "low"
    texture_size: int = 2048
    face_index: int = 0
    seed: int = 0
    shape_source: str = "auto"
    template: str | None = None
    landmarks: str | None = None
    preview_size: int = 256
    same_camera: bool | None = None
    force: bool = False
    fit: "FitConfig | None" = None
    texture: "TextureConfig | None" = None


@dataclasses.dataclass(frozen=True)
class Avatar:
    """A reconstructed head.  Arrays are numpy; positions in mm in the model's head frame.

    Attributes:
      vertices: ``(V, 3) float32`` fitted head with its expression (P_F of the paper).
      neutral_vertices: ``(V, 3) float32`` fitted head without expression (P + deltaP).
      faces, uvs, uv_faces: topology and UV layout of the model.
      expression_names: ``M`` blendshape names; expression_weights ``(M,)`` fitted weights in [0, 1];
      expression_basis: ``(M, V, 3)`` blendshape deltas (the GLB's morph targets).
      texture: ``(S, S, 3) uint8`` diffuse map; texture_confidence ``(S, S) float32`` in [0, 1].
      K: ``(3, 3)`` fitted intrinsics; rotation ``(3, 3)``, translation ``(3,)``: head -> camera.
      landmarks_2d: ``(68, 2)`` detected landmarks (px); landmarks_3d ``(68, 3)`` fitted (head frame, mm);
      landmark_errors_px: ``(68,)`` reprojection errors.
      image_size: ``(h, w)``; timings: seconds per stage; info: extra report fields.
      eyes: :class:`~digitaltwin_jax.texture.eyes.Eyes` (eyeball meshes, head frame, and their map) or None.
    """

    vertices: np.ndarray
    neutral_vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    expression_names: tuple
    expression_weights: np.ndarray
    expression_basis: np.ndarray
    texture: np.ndarray
    texture_confidence: np.ndarray
    K: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    landmarks_2d: np.ndarray
    landmarks_3d: np.ndarray
    landmark_errors_px: np.ndarray
    image_size: tuple
    timings: dict
    info: dict
    eyes: object | None = None

    @property
    def landmark_rmse_px(self) -> float:
        e = self.landmark_errors_px[np.isfinite(self.landmark_errors_px)]
        return float(np.sqrt(np.mean(e ** 2))) if e.size else float("nan")

    @property
    def vertices_camera(self) -> np.ndarray:
        """``(V, 3)`` fitted vertices in the OpenCV camera frame."""
        return self.vertices @ self.rotation.T + self.translation


@dataclasses.dataclass(frozen=True)
class Stages:
    """The swappable steps of the pipeline.

    Attributes:
      detect: ``image (H,W,3) uint8 -> list[Face]`` in detect_faces order, index 0 the default face
        (raises NoFaceError / FaceTooSmallError).
      embed: ``(image, face) -> (D,) float32`` identity embedding.
      shape: ``(image, face, embedding, model) -> (V,3) mm or None``; None means "fit identity
        coefficients to the landmarks" inside the Gauss-Newton solve.
      fit: ``(model, landmarks_2d, image_size, shape) -> FitResult``.
      texture: ``(image, face, fit_result, model, embedding, size, seed) -> (texture (S,S,3) uint8,
        confidence (S,S) float, info dict)``.
      eyes: ``(image, face, model, neutral_vertices, rotation, translation) -> Eyes`` or None (no eyeballs).
    """

    detect: Callable
    embed: Callable
    shape: Callable
    fit: Callable
    texture: Callable
    eyes: Callable | None = None


SHAPE_SOURCES = ("auto", "template", "fit", "regressor", "guarded", "calibrated")

#: What ``shape_source="auto"`` runs.  Chosen by ``benchmarks/bench_fidelity.py``'s rule (docs page
#: "Fidelity"): a source is the default only when its paired ARMSE interval beats the template on the
#: out-of-distribution synthetic set (b) and real photos' embeddings lie inside the region the
#: regressor was trained on (or the guard pulls it toward the template).
AUTO_SHAPE_SOURCE = "calibrated"

#: The benchmark's method name of each shape source followed by the non-rigid fit.
BENCHMARK_METHOD = {"template": "mean+fit", "fit": "landmark_fit", "regressor": "regressor+fit",
                    "guarded": "guarded+fit", "calibrated": "calibrated+fit"}


def auto_shape_pipeline() -> str:
    """The fidelity benchmark's method name of what ``shape_source="auto"`` runs (e.g. ``"mean+fit"``)."""
    return BENCHMARK_METHOD[AUTO_SHAPE_SOURCE]


def _identity_fit_shape(image, face, embedding, model):
    return None


_identity_fit_shape.name = "fit"


def _template_shape(image, face, embedding, model):
    return np.asarray(model.vertices, np.float32)


_template_shape.name = "template"


def _default_fit(model, landmarks_2d, image_size, shape, config=None):
    from digitaltwin_jax.fitting import FitConfig, fit
    from digitaltwin_jax.shape_prior.prior import IdentityPrior

    cfg = config or FitConfig()
    if isinstance(shape, IdentityPrior):  # identity fitted around the prior's centre, under its width
        return fit(model, landmarks_2d, image_size, shape=shape.centre, landmark_weights=shape.landmark_weights,
                   config=shape.fit_config(cfg))
    cfg = dataclasses.replace(cfg, fit_identity=shape is None)
    return fit(model, landmarks_2d, image_size, shape=shape, config=cfg)


def _default_texture(image, face, fit_result, model, embedding, size, seed, config=None):
    from digitaltwin_jax.texture.cache import shared_cache
    from digitaltwin_jax.texture.face_region import projection_mask
    from digitaltwin_jax.texture.pipeline import TextureConfig, build_texture

    # only the face oval of the photo is projected (hair, collar and background are not skin), without
    # the inner mouth (teeth on the lips) and hair falling on the forehead; the UV layout's
    # photo-independent pieces are computed once per process (same result, less time)
    region = projection_mask(image, face.landmarks)
    cfg = dataclasses.replace(config or TextureConfig(), size=size)
    res = build_texture(image, fit_result.vertices_camera, fit_result.intrinsics, model, embedding=embedding,
                        config=cfg, image_mask=region, cache=shared_cache())
    tex8 = np.add(np.multiply(res.diffuse, 255.0, out=res.diffuse), 0.5, out=res.diffuse).astype(np.uint8)  # in [0, 1]
    return tex8, res.confidence, {"bank_index": int(res.bank_index), "bank_rule": res.bank_rule}


def _default_eyes(image, face, model, neutral_vertices, rotation, translation):
    from digitaltwin_jax.texture.eyes import build_eyes

    return build_eyes(image, face.landmarks, neutral_vertices, model, rotation=rotation, translation=translation)


def _shape_source(name: str, warnings: list | None = None, template: str | None = None):
    """The shape stage for ``name``; a source that cannot be loaded under ``auto`` falls back to the
    template with a warning appended to ``warnings`` (never silently)."""
    if name not in SHAPE_SOURCES:
        raise ValueError(f"shape_source must be one of {SHAPE_SOURCES}, got {name!r}")
    if name == "auto":
        try:
            return _shape_source(AUTO_SHAPE_SOURCE, template=template)
        except (ImportError, FileNotFoundError, ValueError) as exc:
            if warnings is not None:
                warnings.append(f"shape source {AUTO_SHAPE_SOURCE!r} (auto) unavailable ({type(exc).__name__}: "
                                f"{exc}); using the template head")
            return _template_shape
    if name == "template":
        if template in (None, "ict"):
            return _template_shape
        from digitaltwin_jax.shape_prior.prior import load_shape_prior

        prior = load_shape_prior()

        def corrected(image, face, embedding, model):
            return prior.template_vertices(model, template), {"template": template}

        corrected.name = "template"
        prior.rule(template)  # an unknown name fails here
        return corrected
    if name == "fit":
        return _identity_fit_shape
    if name == "calibrated":
        from digitaltwin_jax.shape_prior.source import CalibratedShapeSource

        return CalibratedShapeSource(template=template)
    from digitaltwin_jax.regressor.shape_source import RegressorShapeSource

    if name == "regressor":
        return RegressorShapeSource()
    from digitaltwin_jax.regressor.guard import load_guard

    return RegressorShapeSource(guard=load_guard())


def default_stages(config: AvatarConfig = AvatarConfig(), warnings: list | None = None) -> Stages:
    """The shipped stages: front end (MediaPipe + dlib, :mod:`digitaltwin_jax.frontend`), shape source (:data:`SHAPE_SOURCES`), Gauss-Newton, UV texture.

    ``warnings``: a list that receives a message for every fallback taken while building the stages.
    """
    from digitaltwin_jax import frontend

    fit, tex = _default_fit, _default_texture
    if config.fit or config.texture:  # same stage, other settings (the report names it the same)
        fit, tex = functools.partial(fit, config=config.fit), functools.partial(tex, config=config.texture)
        fit.name, tex.name = _default_fit.__name__, _default_texture.__name__
    route = frontend.DEFAULT_LANDMARKS if config.landmarks is None else config.landmarks
    if route not in frontend.LANDMARK_ROUTES:
        raise ValueError(f"landmarks must be one of {frontend.LANDMARK_ROUTES}; got {config.landmarks!r}")
    detect = functools.partial(frontend.detect_faces, landmarks=route)
    detect.name = f"detect_faces ({route} landmarks)"  # the report's stage name says which route
    return Stages(detect=detect, embed=frontend.identity_embedding,
                  shape=_shape_source(config.shape_source, warnings, config.template), fit=fit, texture=tex,
                  eyes=_default_eyes)


def reconstruct(image, *, config: AvatarConfig = AvatarConfig(), stages: Stages | None = None,
                model=None) -> Avatar:
    """Reconstruct an avatar from one photo, or from a list of photos of one person.

    Args:
      image: ``(H, W, 3) uint8`` RGB (use :func:`digitaltwin_jax.io.images.read_image` for files), or
        a list of them (one person: :func:`_reconstruct_photos`).
      config: options; stages: swappable steps (default :func:`default_stages`); model: a HeadModel
        (default ``load_head_model(config.resolution)``).

    Returns:
      :class:`Avatar` (arrays, no files).
    Raises:
      NoFaceError, FaceTooSmallError (front end), FitError, ValueError for bad arrays.
    """
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.errors import FitError

    if isinstance(image, (list, tuple)):
        return _reconstruct_photos(image, config=config, stages=stages, model=model)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    if config.texture_size < 16:
        raise ValueError(f"texture_size must be >= 16, got {config.texture_size}")
    warnings: list[str] = []
    if stages is None:
        stages = default_stages(config, warnings)
    model = model if model is not None else load_head_model(config.resolution)
    timings = {}

    t = time.perf_counter()
    faces = stages.detect(image)
    from digitaltwin_jax.frontend.types import pick_face

    face = pick_face(faces, config.face_index)  # FaceIndexError when out of range
    timings["detect"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        embedding = np.asarray(stages.embed(image, face), dtype=np.float32)
    except (ValueError, RuntimeError) as exc:
        embedding = None
        warnings.append(f"identity embedding failed ({type(exc).__name__}: {exc}); shape sources that need it "
                        "fall back, and the texture bank entry is chosen by skin tone")
    if embedding is not None and not np.all(np.isfinite(embedding)):
        embedding = None
        warnings.append("identity embedding is not finite; shape sources that need it fall back, and the "
                        "texture bank entry is chosen by skin tone")
    timings["embed"] = time.perf_counter() - t

    t = time.perf_counter()
    requested = _stage_name(stages.shape)
    shape = stages.shape(image, face, embedding, model)
    shape_info = {}
    if isinstance(shape, tuple):  # (vertices or None, info dict)
        shape, shape_info = shape[0], dict(shape[1])
    used = requested if shape is not None or requested == "fit" else "fit"
    if used != requested:
        warnings.append(f"shape source {requested!r} gave no shape (e.g. the identity embedding failed); "
                        "identity coefficients were fitted to the landmarks instead")
    timings["shape"] = time.perf_counter() - t

    t = time.perf_counter()
    res = stages.fit(model, face.landmarks, image.shape[:2], shape)
    timings["fit"] = time.perf_counter() - t
    for name in ("vertices", "vertices_camera"):
        if not np.all(np.isfinite(np.asarray(getattr(res, name)))):
            raise FitError(f"the fit produced non-finite {name}")
    if not bool(np.all(res.success)):
        raise FitError("the Gauss-Newton fit did not produce a finite solution")

    t = time.perf_counter()
    texture, confidence, tex_info = stages.texture(image, face, res, model, embedding, config.texture_size, config.seed)
    timings["texture"] = time.perf_counter() - t

    from digitaltwin_jax.geometry.rotations import quaternion_to_matrix_np

    beta = np.asarray(res.params.beta, dtype=np.float32)
    basis = np.asarray(model.expression_basis, dtype=np.float32)
    verts = np.asarray(res.vertices, dtype=np.float32)
    neutral = verts - np.tensordot(beta, basis, axes=1)
    # fitted 3D landmarks: the final samples (jaw points at their slid silhouette positions)
    idx, w = np.asarray(res.landmark_indices), np.asarray(res.landmark_weights, dtype=np.float32)
    lm3d = np.einsum("lk,lkc->lc", w, verts[idx])
    errors = np.asarray(res.reprojection_errors, dtype=np.float32)
    rotation = quaternion_to_matrix_np(res.params.q)
    eyes, eye_info = None, None
    if stages.eyes is not None:
        t = time.perf_counter()
        eyes = stages.eyes(image, face, model, neutral, rotation, np.asarray(res.params.t, dtype=np.float64))
        timings["eyes"] = time.perf_counter() - t
        col = getattr(eyes, "colours", None)
        if col is not None:
            eye_info = {"iris_rgb": [round(float(c), 4) for c in col.iris],
                        "sclera_rgb": [round(float(c), 4) for c in col.sclera],
                        "sampled_from_photo": bool(col.sampled), "eye_pixels": int(col.pixels),
                        "sclera_from_photo": bool(col.sclera_sampled)}
            if col.warning:
                warnings.append(col.warning)
    return Avatar(
        vertices=verts, neutral_vertices=neutral.astype(np.float32), faces=np.asarray(model.faces),
        uvs=np.asarray(model.uvs), uv_faces=np.asarray(model.uv_faces),
        expression_names=tuple(model.expression_names), expression_weights=beta, expression_basis=basis,
        texture=np.asarray(texture), texture_confidence=np.asarray(confidence, dtype=np.float32),
        K=np.asarray(res.intrinsics, dtype=np.float64), rotation=rotation,
        translation=np.asarray(res.params.t, dtype=np.float64),
        landmarks_2d=np.asarray(face.landmarks, dtype=np.float32), landmarks_3d=lm3d, landmark_errors_px=errors,
        image_size=tuple(int(s) for s in image.shape[:2]), timings=timings,
        info={"face_box": [float(x) for x in face.box], "faces_found": len(faces), "resolution": model.resolution,
              "shape_source": used,
              "stages": {"detect": _stage_name(stages.detect), "embed": _stage_name(stages.embed),
                         "shape": {"requested": requested, "used": used, **shape_info},
                         "fit": _stage_name(stages.fit), "texture": _stage_name(stages.texture)},
              "warnings": list(warnings),
              "energy_per_iteration": [float(e) for e in np.asarray(res.energy)],
              "energy_terms": {k: float(v) for k, v in res.energy_terms.items()},
              "focal_scale": float(np.asarray(res.params.f_s)),
              "identity_coeffs": np.asarray(res.params.alpha, dtype=float).tolist(),
              "texture": tex_info, **({"eyes": eye_info} if eye_info is not None else {})},
        eyes=eyes,
    )


def _stage_name(fn) -> str:
    return str(getattr(fn, "name", getattr(fn, "__name__", type(fn).__name__)))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _versions() -> dict:
    import jax

    from digitaltwin_jax import __version__

    return {"digitaltwin_jax": __version__, "jax": jax.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def report_dict(avatar: Avatar, photo_path=None) -> dict:
    """The JSON-serialisable ``report.json`` content."""
    return {
        "photo": str(photo_path) if photo_path else None,
        "image_size_hw": list(avatar.image_size),
        "timings_s": {k: round(float(v), 4) for k, v in avatar.timings.items()},
        "landmarks_2d": avatar.landmarks_2d.tolist(),
        "landmarks_3d": avatar.landmarks_3d.tolist(),
        "landmarks_3d_units": "mm, head frame (x to the subject's left, y up, +z out of the face)",
        "landmark_reprojection_rmse_px": avatar.landmark_rmse_px,
        "landmark_errors_px": avatar.landmark_errors_px.tolist(),
        "camera": {"K": avatar.K.tolist(), "convention": "OpenCV: x right, y down, z forward; p_cam = R p + t (mm)"},
        "pose": {"rotation": avatar.rotation.tolist(), "translation_mm": avatar.translation.tolist()},
        "expression_weights": dict(zip(avatar.expression_names, map(float, avatar.expression_weights))),
        "num_vertices": int(len(avatar.vertices)),
        "num_faces": int(len(avatar.faces)),
        "texture_size": int(avatar.texture.shape[0]),
        "versions": _versions(),
        **avatar.info,
    }


def _nan_to_null(obj):
    """``obj`` with every non-finite float replaced by None (JSON ``null``; ``NaN`` is not JSON)."""
    if isinstance(obj, dict):
        return {k: _nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_null(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _check_writable_avatar(avatar: Avatar, photo):
    """FitError / ValueError for an avatar or photo that would write NaN or garbage; returns the photo."""
    from digitaltwin_jax.errors import FitError
    from digitaltwin_jax.io.images import to_uint8_rgb

    for name in ("vertices", "neutral_vertices", "expression_weights", "expression_basis", "K", "rotation",
                 "translation", "landmarks_2d", "landmarks_3d"):
        a = np.asarray(getattr(avatar, name))
        if a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)):
            raise FitError(f"avatar.{name} contains NaN or infinity (or is not numeric); nothing was written")
    tex = np.asarray(avatar.texture)
    if tex.dtype != np.uint8 or tex.ndim != 3 or tex.shape[2] != 3 or tex.shape[0] == 0:
        raise ValueError(f"avatar.texture must be an (S, S, 3) uint8 image, got {tex.shape} {tex.dtype}")
    return None if photo is None else to_uint8_rgb(photo, name="photo")


def _remove_empty_dirs(dirs):
    """rmdir each folder (deepest first) while it is empty: undo the parents write_avatar created."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def write_avatar(avatar: Avatar, outdir, *, photo: np.ndarray | None = None, photo_path=None,
                 overwrite: bool = False, preview_size: int = 256) -> Path:
    """Write ``head.obj/.mtl``, ``diffuse.png``, ``head.glb``, ``preview.png``, ``report.json``.

    Everything is written into a temporary folder beside ``outdir`` and renamed at the end, so a
    failure leaves no half-written output.  An existing ``outdir`` is replaced only with ``overwrite``,
    and then swapped, never deleted first: the new folder is complete, the old one is renamed aside,
    the new one renamed into place, and only then the old one deleted (if the last rename fails the
    old one is renamed back).  ``outdir`` is therefore always the old or the new avatar, except for
    the instant between the two renames, when it is absent.  Missing parent folders are created (and
    removed again if writing fails).

    Raises:
      OutputExistsError: ``outdir`` exists and ``overwrite`` is False (also a ``FileExistsError``).
      OutputWriteError: any OS error while writing (read-only folder, disk full, a file in the way;
        also an ``OSError``); nothing is left behind and an old avatar is intact.
      FitError: the avatar holds NaN or infinite values (checked before anything is written).
    """
    from digitaltwin_jax.errors import OutputError, OutputExistsError, OutputWriteError
    from digitaltwin_jax.io.gltf import write_glb
    from digitaltwin_jax.io.images import png_bytes  # lossless, fast zlib level
    from digitaltwin_jax.preview import preview_image
    from digitaltwin_jax.io.obj import write_obj

    outdir = Path(outdir)
    photo = _check_writable_avatar(avatar, photo)
    if outdir.exists() and not overwrite:
        raise OutputExistsError(f"{outdir} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    created = [d for d in (outdir.parent, *outdir.parent.parents) if not d.exists()]  # deepest first
    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    except OSError as e:
        _remove_empty_dirs(created)
        raise OutputWriteError(f"cannot create the output folder {outdir}: {e}") from e
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the output folder gets normal permissions
    try:
        t = time.perf_counter()
        tex_png = png_bytes(avatar.texture)
        (tmp / "diffuse.png").write_bytes(tex_png)
        parts = ()
        if avatar.eyes is not None:
            from digitaltwin_jax.io.parts import MeshPart

            eye_png = png_bytes(avatar.eyes.texture)
            (tmp / "eyes.png").write_bytes(eye_png)
            parts = (MeshPart("eyes", avatar.eyes.vertices, avatar.eyes.faces, avatar.eyes.uvs, avatar.eyes.uv_faces,
                              texture_name="eyes.png", texture_png=eye_png, roughness=0.2),)
        write_obj(tmp / "head.obj", avatar.vertices, avatar.faces, avatar.uvs, avatar.uv_faces,
                  mtl_name="head.mtl", texture_name="diffuse.png", parts=parts)
        write_glb(tmp / "head.glb", avatar.neutral_vertices, avatar.faces, avatar.uvs, avatar.uv_faces,
                  texture_png=tex_png, morph_targets=avatar.expression_basis,
                  morph_names=list(avatar.expression_names), morph_weights=avatar.expression_weights, scale=1e-3,
                  parts=parts)
        avatar.timings["write_meshes"] = time.perf_counter() - t
        if photo is not None:
            t = time.perf_counter()
            (tmp / "preview.png").write_bytes(png_bytes(preview_image(avatar, photo, preview_size)))
            avatar.timings["preview"] = time.perf_counter() - t
        (tmp / "report.json").write_text(
            json.dumps(_nan_to_null(report_dict(avatar, photo_path)), indent=2, allow_nan=False))
        if outdir.exists() and not overwrite:  # appeared while we were writing
            raise OutputExistsError(f"{outdir} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        aside = None
        if outdir.exists() or outdir.is_symlink():
            aside = outdir.parent / f"{tmp.name}.old"  # unique: tmp's random name
            outdir.rename(aside)
        try:
            tmp.rename(outdir)
        except BaseException:
            if aside is not None:
                aside.rename(outdir)  # put the old avatar back
            raise
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty_dirs(created)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputWriteError(f"cannot write the avatar to {outdir}: {e}") from e
        raise
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()
    return outdir


def reconstruct_file(photo_path, outdir, *, config: AvatarConfig = AvatarConfig(), overwrite: bool = False,
                     stages: Stages | None = None) -> dict:
    """Read a photo, reconstruct, write the outputs; returns a summary dict.

    Raises what :func:`read_image`, :func:`reconstruct` and :func:`write_avatar` raise; an existing
    ``outdir`` without ``overwrite`` (OutputExistsError) and a file where a folder should be
    (OutputWriteError) are refused before the photo is read.
    """
    from digitaltwin_jax.errors import OutputExistsError, OutputWriteError
    from digitaltwin_jax.io.images import read_image

    outdir = Path(outdir)
    if outdir.exists() and not overwrite:
        raise OutputExistsError(f"{outdir} exists; use --overwrite to replace it")
    blocker = next((d for d in (outdir.parent, *outdir.parent.parents) if d.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputWriteError(f"cannot write the avatar to {outdir}: {blocker} is a file, not a folder")
    t0 = time.perf_counter()
    image = read_image(photo_path)
    read_s = time.perf_counter() - t0
    avatar = reconstruct(image, config=config, stages=stages)
    avatar.timings["read"] = read_s
    write_avatar(avatar, outdir, photo=image, photo_path=photo_path, overwrite=overwrite,
                 preview_size=config.preview_size)
    return {"outdir": str(outdir), "landmark_rmse_px": avatar.landmark_rmse_px, "timings": avatar.timings,
            "shape_source": avatar.info.get("shape_source"), "warnings": list(avatar.info.get("warnings", [])),
            "shape_stage": dict(avatar.info.get("stages", {}).get("shape", {}))}


def _reconstruct_photos(images, *, config: AvatarConfig, stages: Stages | None, model, names=None,
                        exif_keys=None) -> Avatar:
    """Several photos of one person -> one Avatar (:mod:`digitaltwin_jax.multiview.reconstruct`): the
    shared head, the texture fused from all photos; pose, camera and landmarks of the first photo;
    every photo's landmarks, pose, expression and reprojection errors in ``info["photos"]``."""
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.geometry.rotations import quaternion_to_matrix
    from digitaltwin_jax.multiview.reconstruct import photo_reports, reconstruct_views

    names = [f"photo {i + 1}" for i in range(len(images))] if names is None else list(names)
    images = [np.asarray(im) for im in images]
    warnings: list[str] = []
    stages = stages if stages is not None else default_stages(config, warnings)
    model = model if model is not None else load_head_model(config.resolution)
    r = reconstruct_views(images, names, model, detect=stages.detect, embed=stages.embed, texture=stages.texture,
                          shape=stages.shape, texture_size=config.texture_size, seed=config.seed,
                          face_index=config.face_index, same_camera=config.same_camera, exif_keys=exif_keys,
                          force=config.force)
    f = r.fit
    R = np.asarray(quaternion_to_matrix(np.asarray(f.q, np.float64)), np.float64)
    photos, lm3d = photo_reports(r, names, images, model, R)
    eyes = None
    if stages.eyes is not None:
        eyes = stages.eyes(images[0], r.faces[0], model, f.neutral.astype(np.float32), R[0], f.t[0])
    return Avatar(
        vertices=f.vertices[0].astype(np.float32), neutral_vertices=f.neutral.astype(np.float32),
        faces=np.asarray(model.faces), uvs=np.asarray(model.uvs), uv_faces=np.asarray(model.uv_faces),
        expression_names=tuple(model.expression_names), expression_weights=f.beta[0].astype(np.float32),
        expression_basis=np.asarray(model.expression_basis, np.float32), texture=r.texture,
        texture_confidence=r.confidence, K=f.intrinsics[0], rotation=R[0], translation=f.t[0],
        landmarks_2d=np.asarray(r.faces[0].landmarks, np.float32), landmarks_3d=lm3d[0].astype(np.float32),
        landmark_errors_px=f.reprojection_errors[0].astype(np.float32), image_size=tuple(images[0].shape[:2]),
        timings=dict(r.timings),
        info={"face_box": [float(x) for x in r.faces[0].box], "resolution": model.resolution,
              "num_photos": len(images), "shape_source": f"multiview ({r.shape_info['source']})",
              "stages": {"shape": {"requested": "multiview", "used": "multiview", **r.shape_info}},
              "warnings": warnings + list(r.warnings), "energy_per_iteration": [float(e) for e in f.energy],
              "focal_scale": float(f.focal_scale[0]), "identity_coeffs": f.alpha.tolist(),
              "identity_distances": np.asarray(r.distances).tolist(), "photos": photos},
        eyes=eyes)


def reconstruct_files(photo_paths, outdir, *, config: AvatarConfig = AvatarConfig(), overwrite: bool = False,
                      stages: Stages | None = None) -> dict:
    """:func:`reconstruct_file` for several photos of one person (one avatar in ``outdir``); the
    preview shows the first photo."""
    from digitaltwin_jax.errors import OutputExistsError
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.multiview.reconstruct import exif_camera_key

    outdir, paths = Path(outdir), [Path(p) for p in photo_paths]
    if outdir.exists() and not overwrite:
        raise OutputExistsError(f"{outdir} exists; use --overwrite to replace it")
    t0 = time.perf_counter()
    images = [read_image(p) for p in paths]  # ImageReadError names the file
    keys = [exif_camera_key(p) for p in paths]
    avatar = _reconstruct_photos(images, config=config, stages=stages, model=None, names=[p.name for p in paths],
                                 exif_keys=keys)
    avatar.timings["read"] = time.perf_counter() - t0
    write_avatar(avatar, outdir, photo=images[0], photo_path=paths[0], overwrite=overwrite,
                 preview_size=config.preview_size)
    return {"outdir": str(outdir), "landmark_rmse_px": avatar.landmark_rmse_px, "timings": avatar.timings,
            "shape_source": avatar.info.get("shape_source"), "warnings": list(avatar.info.get("warnings", [])),
            "shape_stage": {}, "photos": [(p["photo"], p["landmark_reprojection_rmse_px"]) for p in avatar.info["photos"]]}
