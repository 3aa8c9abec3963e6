"""Several photos of one person -> one head (issue 16): the multi-photo path of
:func:`digitaltwin_jax.pipeline.reconstruct`, as plain arrays (the pipeline makes the Avatar).

    photos -> front end on each (box, 68 landmarks, identity embedding; errors name the photo)
           -> same-person check (identity-embedding distance <= 0.6, unless forced)
           -> starting shape (:func:`~.shape.combined_shape`: guarded regressor at the mean embedding)
           -> :func:`~.fit.fit_views` (shared identity; pose, expression per photo; focal per camera)
           -> each photo's UV map (the single-photo texture stage) -> :func:`~digitaltwin_jax.texture.fuse.fuse_textures`

The stages are passed in (the single-photo pipeline's ``detect``, ``embed``, ``texture`` callables),
so a swapped front end or texturer is used here too.
"""
from __future__ import annotations

import dataclasses
import time
import types
from typing import Callable, Sequence

import numpy as np

from digitaltwin_jax.multiview.fit import MultiFitConfig, MultiViewFit, fit_views
from digitaltwin_jax.multiview.shape import (SAME_PERSON_THRESHOLD, DifferentPeopleError, camera_groups,
                                             check_same_person)

__all__ = ["ViewsResult", "reconstruct_views", "exif_camera_key", "photo_reports"]


@dataclasses.dataclass(frozen=True)
class ViewsResult:
    """Output of :func:`reconstruct_views`.

    Attributes:
      fit: the :class:`~.fit.MultiViewFit`.
      faces: the detected face of each photo.  embeddings: ``(V, D)`` (NaN rows: embedding failed).
      texture: ``(S, S, 3) uint8`` fused map; confidence ``(S, S)``; best_view ``(S, S) int32`` (-1 unseen).
      texture_info: per photo, the texture stage's info; resolution: ``(V,)`` px per mm.
      distances: ``(V, V)`` identity-embedding distances.  camera_groups: ``(V,) int``.
      shape_info: how the starting shape was made.  warnings: fallbacks taken.  timings: seconds per stage.
    """

    fit: MultiViewFit
    faces: list
    embeddings: np.ndarray
    texture: np.ndarray
    confidence: np.ndarray
    best_view: np.ndarray
    texture_info: list
    resolution: np.ndarray
    distances: np.ndarray
    camera_groups: np.ndarray
    shape_info: dict
    warnings: list
    timings: dict


def exif_camera_key(path):
    """``(camera make, model, focal length)`` from a photo's EXIF, or None when any is missing."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            ex = im.getexif()
            make, model = ex.get(0x010F), ex.get(0x0110)
            focal = ex.get_ifd(0x8769).get(0x920A)
    except Exception:  # noqa: BLE001 - no EXIF is "unknown camera", never an error
        return None
    if model is None or focal is None:
        return None
    return (str(make or "").strip(), str(model).strip(), round(float(focal), 3))


def _named(exc: Exception, name: str) -> Exception:
    """The same exception type with the photo's name in front of its message."""
    try:
        return type(exc)(f"{name}: {exc}")
    except TypeError:  # exception types with other constructors keep their message
        return exc


def identity_views_config(config: MultiFitConfig, prior) -> MultiFitConfig:
    """``config`` with the shared identity fitted under an
    :class:`~digitaltwin_jax.shape_prior.prior.IdentityPrior`'s width (its single-photo rule,
    :meth:`~digitaltwin_jax.shape_prior.prior.IdentityPrior.fit_config`, for the views' joint fit)."""
    import dataclasses

    fc = prior.fit_config(config.fit)
    return dataclasses.replace(config, fit_identity=fc.fit_identity, fit=fc)


def reconstruct_views(images: Sequence[np.ndarray], names: Sequence[str], model, *, detect: Callable, embed: Callable,
                      texture: Callable | None, shape: Callable | None = None, texture_size: int = 2048, seed: int = 0,
                      face_index: int = 0, same_camera: bool | None = None, exif_keys=None, force: bool = False,
                      config: MultiFitConfig = MultiFitConfig()) -> ViewsResult:
    """Reconstruct one head from ``V`` photos of one person (module docstring).

    Args:
      images: ``V`` ``(H, W, 3) uint8`` photos; names: their names for messages (file names).
      model: the head model.  detect, embed, texture: the single-photo pipeline's stages
        (:class:`digitaltwin_jax.pipeline.Stages`); ``texture`` None: no texture (a grey map).
      shape: the single-photo shape stage ``(image, face, embedding, model) -> (N, 3)``, ``(vertices,
        info)`` or None; called once with the *mean* identity embedding of the photos (with the
        guarded regressor: :func:`~.shape.combined_shape`).  None, or a stage that gives no shape:
        the template head (with a warning).
      same_camera: True: all photos share intrinsics; False: each its own; None: photos with the same
        EXIF camera and focal length (``exif_keys``) share them.
      force: reconstruct even when two photos look like different people.

    Raises:
      NoFaceError: (and the front end's other errors, e.g. FaceTooSmallError) the message starting
        with the photo's name.
      ValueError: a photo's own ValueError, the message starting with its name; or two photos that
        look like different people (``DifferentPeopleError``, naming both).
    """
    from digitaltwin_jax.errors import FitError

    if len(images) != len(names) or len(images) < 1:
        raise ValueError(f"give one name per photo, got {len(images)} photos and {len(names)} names")
    images = [np.asarray(im) for im in images]
    for im, name in zip(images, names):
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(f"{name}: image must be an (H, W, 3) uint8 RGB array, got {im.shape} {im.dtype}")
    warnings, timings = [], {}
    t = time.perf_counter()
    faces, emb = [], np.full((len(images), 128), np.nan, np.float32)
    for i, (img, name) in enumerate(zip(images, names)):
        try:
            found = detect(img)
            from digitaltwin_jax.frontend.types import pick_face

            faces.append(pick_face(found, face_index))  # FaceIndexError when out of range
        except ValueError as exc:
            raise _named(exc, name) from exc
        try:
            e = np.asarray(embed(img, faces[-1]), np.float32)
            if e.shape != (128,) and i == 0:
                emb = np.full((len(images), e.size), np.nan, np.float32)
            if np.all(np.isfinite(e)):
                emb[i] = e.ravel()
            else:
                warnings.append(f"{name}: identity embedding is not finite; left out of the shape estimate")
        except (ValueError, RuntimeError) as exc:
            warnings.append(f"{name}: identity embedding failed ({type(exc).__name__}: {exc}); left out of the "
                            "shape estimate and the same-person check")
    timings["detect_embed"] = time.perf_counter() - t
    ok = np.all(np.isfinite(emb), axis=1)
    distances = np.full((len(images), len(images)), np.nan)
    if ok.sum() >= 2:
        try:
            distances[np.ix_(ok, ok)] = check_same_person(emb[ok], [n for n, k in zip(names, ok) if k])
        except DifferentPeopleError:
            if not force:
                raise
            distances[np.ix_(ok, ok)] = np.linalg.norm(emb[ok][:, None] - emb[ok][None], axis=-1)
            warnings.append(f"photos look like different people (largest identity-embedding distance "
                            f"{np.nanmax(distances):.3f} > {SAME_PERSON_THRESHOLD}); reconstructed as one person (forced)")
    if same_camera is None:
        keys = list(exif_keys) if exif_keys is not None else [None] * len(images)
        groups = camera_groups(keys)
    else:
        groups = np.zeros(len(images), np.int64) if same_camera else np.arange(len(images))
    t = time.perf_counter()
    shape_info = {"source": "template", "views_combined": 0}
    start, landmark_weights = None, None
    if shape is not None and ok.any():
        out = shape(images[0], faces[0], emb[ok].mean(axis=0).astype(np.float32), model)
        if isinstance(out, tuple):
            out, extra = out[0], dict(out[1])
        else:
            extra = {}
        from digitaltwin_jax.shape_prior.prior import IdentityPrior

        if isinstance(out, IdentityPrior):  # the shared identity is fitted around its centre, under its width
            config = identity_views_config(config, out)
            landmark_weights = out.landmark_weights
            out = out.centre
        if out is not None:
            start = np.asarray(out, np.float64)
            name = str(getattr(shape, "name", getattr(shape, "__name__", type(shape).__name__)))
            shape_info = {"source": name, "views_combined": int(ok.sum()), "embedding": "mean of the photos'", **extra}
    if start is None:
        warnings.append("the shape stage gave no shape (or no identity embedding): the fit starts from the template "
                        "head, identity fitted to all photos' landmarks")
    timings["shape"] = time.perf_counter() - t
    t = time.perf_counter()
    lms = np.stack([np.asarray(f.landmarks, np.float64) for f in faces])
    try:
        fitted = fit_views(model, lms, [img.shape[:2] for img in images], shape=start, config=config,
                           camera_groups=groups, landmark_weights=landmark_weights)
    except ValueError as exc:
        msg = str(exc)
        for v, name in enumerate(names):
            msg = msg.replace(f"view {v}:", f"{name}:")
        raise FitError(msg) from exc
    if not fitted.success:
        raise FitError("the multi-view Gauss-Newton fit did not produce a finite solution")
    timings["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    size = int(texture_size)
    if texture is None:
        maps = np.full((len(images), size, size, 3), 128, np.uint8)
        confs, infos = np.zeros((len(images), size, size), np.float32), [{} for _ in images]
    else:
        maps, confs, infos = [], [], []
        for v, img in enumerate(images):
            view = types.SimpleNamespace(vertices_camera=fitted.vertices_camera[v], intrinsics=fitted.intrinsics[v])
            tex, conf, info = texture(img, faces[v], view, model, None if not ok[v] else emb[v], size, seed)
            maps.append(np.asarray(tex))
            confs.append(np.asarray(conf, np.float32))
            infos.append(info)
        maps, confs = np.stack(maps), np.stack(confs)
    from digitaltwin_jax.texture.fuse import fuse_textures, view_resolution

    face_mask = np.asarray(getattr(model, "face_mask", np.ones(model.num_vertices, bool)), bool)
    res = np.array([view_resolution(fitted.vertices_camera[v], fitted.intrinsics[v], face_mask) for v in range(len(images))])
    fused, conf, best = fuse_textures(maps.astype(np.float32), confs, res)
    timings["texture"] = time.perf_counter() - t
    return ViewsResult(fit=fitted, faces=faces, embeddings=emb, texture=(np.clip(fused, 0, 255) + 0.5).astype(np.uint8),
                       confidence=conf, best_view=best, texture_info=infos, resolution=res, distances=distances,
                       camera_groups=np.asarray(fitted.camera_groups), shape_info=shape_info, warnings=warnings,
                       timings=timings)


def photo_reports(r: ViewsResult, names, images, model, rotations) -> tuple[list, np.ndarray]:
    """Every photo's entry of ``report.json`` (landmarks, pose, expression, reprojection errors, camera,
    its share of the fused texture) and the ``(V, 68, 3)`` fitted 3D landmarks (head frame, mm)."""
    f = r.fit
    nv = len(images)
    lm3d = np.einsum("vlk,vlkc->vlc", f.landmark_weights, f.vertices[np.arange(nv)[:, None, None], f.landmark_indices])
    out = []
    for v in range(nv):
        e = f.reprojection_errors[v]
        out.append({
            "photo": names[v], "image_size_hw": list(images[v].shape[:2]), "face_box": [float(x) for x in r.faces[v].box],
            "landmarks_2d": np.asarray(r.faces[v].landmarks, float).tolist(), "landmarks_3d": lm3d[v].tolist(),
            "landmark_errors_px": e.tolist(),
            "landmark_reprojection_rmse_px": float(np.sqrt(np.mean(e[np.isfinite(e)] ** 2))) if np.isfinite(e).any() else None,
            "camera": {"K": f.intrinsics[v].tolist(), "camera_group": int(f.camera_groups[v]),
                       "focal_scale": float(f.focal_scale[v])},
            "pose": {"rotation": np.asarray(rotations[v]).tolist(), "translation_mm": f.t[v].tolist()},
            "expression_weights": dict(zip(model.expression_names, map(float, f.beta[v]))),
            "texture_px_per_mm": float(r.resolution[v]), "texel_share": float(np.mean(r.best_view == v)),
            "texture": r.texture_info[v]})
    return out, lm3d
