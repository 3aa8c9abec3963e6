"""The texture stage of the avatar (paper section 3.5): projected selfie texture (foreground) +
bank texture (background) -> one UV diffuse map, blended with Poisson image editing.

Steps of :func:`build_texture`:
  1. :func:`~.projection.project_texture`: colours and confidence per texel;
  2. bank entry: closest identity embedding (L1), else closest skin tone (see :mod:`.bank`);
  3. blend region Omega = texels with confidence >= ``blend_threshold`` (eroded by ``erode`` texels
     so grazing-angle silhouette texels stay out), inside the UV charts;
  4. :func:`~.poisson.poisson_blend` of the projection into the bank texture over Omega, zero flux at
     chart borders and coupled across UV seams;
  5. confidence feathering: ``out = bank + s(c) (blend - bank)`` with ``s`` ramping from 0 at the
     threshold to 1 at ``threshold + fade`` (the blend equals the bank on the boundary of Omega, so
     this adds no seam);
  6. chart padding (:func:`~.seams.dilate_texture`) so bilinear filtering and mipmaps show no dark
     cracks along UV seams.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.texture.bank import TextureBank, default_texture_bank
from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend
from digitaltwin_jax.texture.projection import ProjectedTexture, ProjectionConfig, project_texture
from digitaltwin_jax.texture.seams import dilate_texture, seam_pairs
from digitaltwin_jax.texture.uv import UVSampling, uv_sampling

__all__ = ["TextureConfig", "TextureResult", "build_texture", "write_texture", "write_confidence"]


@dataclasses.dataclass(frozen=True)
class TextureConfig:
    """Settings of :func:`build_texture` (defaults: paper's 2048 x 2048 diffuse map).

    Attributes:
      size: texture side in texels.
      blend_threshold: confidence (cos of the view angle) from which the photo is used.
      fade: width of the confidence ramp above the threshold.
      erode: texels removed from the border of the blend region.
      pad: chart padding in texels (default ``size // 256``, at least 2).
      seams: couple texels across UV seams in the Poisson solve.
      gen_size: resolution at which procedural bank entries are evaluated.
      projection: :class:`~.projection.ProjectionConfig`.
      poisson: :class:`~.poisson.PoissonConfig`.
    """

    size: int = 2048
    blend_threshold: float = 0.25
    fade: float = 0.15
    erode: int = 1
    pad: int | None = None
    seams: bool = True
    gen_size: int = 512
    projection: ProjectionConfig = ProjectionConfig()
    poisson: PoissonConfig = PoissonConfig()


@dataclasses.dataclass(frozen=True)
class TextureResult:
    """Output of :func:`build_texture`.

    Attributes:
      diffuse: ``(S, S, 3) float32`` sRGB diffuse map in [0, 1] (OBJ UV convention).
      confidence: ``(S, S) float32`` projection confidence in [0, 1].
      blend_mask: ``(S, S) bool`` the Poisson region Omega.
      bank_index: index of the bank entry used for the unseen areas.
      bank_rule: ``"identity"``, ``"tone"`` or ``"default"``.
      projected: the :class:`~.projection.ProjectedTexture`.
      info: solver details (Poisson method, unknowns, iterations).
    """

    diffuse: np.ndarray
    confidence: np.ndarray
    blend_mask: np.ndarray
    bank_index: int
    bank_rule: str
    projected: ProjectedTexture
    info: dict


def build_texture(image, vertices_cam, K, model, *, bank: TextureBank | None = None, embedding=None,
                  config: TextureConfig = TextureConfig(), sampling: UVSampling | None = None,
                  image_mask=None) -> TextureResult:
    """Make the avatar's UV diffuse map from one photo.

    Args:
      image: ``(H, W, 3)`` uint8 or float [0, 1] RGB photo.
      vertices_cam: ``(V, 3)`` fitted mesh in the camera frame (mm).
      K: ``(3, 3)`` intrinsics of the photo.
      model: :class:`~digitaltwin_jax.model.HeadModel` (topology, UVs, eye mask; its mean shape
        places the procedural bank's regions and measures seams).
      bank: texture bank (default: :func:`~.bank.default_texture_bank`).
      embedding: ``(128,)`` identity embedding of the photo (face front end), or None.
      config: :class:`TextureConfig`.
      sampling: precomputed ``uv_sampling(model.uvs, model.uv_faces, config.size)``.
      image_mask: optional ``(H, W) bool`` usable photo pixels.

    Returns:
      :class:`TextureResult`.
    """
    size = int(config.size)
    if sampling is None:
        sampling = uv_sampling(model.uvs, model.uv_faces, size)
    proj = project_texture(image, vertices_cam, K, model, size, config=config.projection,
                           sampling=sampling, image_mask=image_mask)
    conf = proj.confidence
    chart = proj.chart_mask
    bank = bank if bank is not None else default_texture_bank()
    confident = conf >= 0.5
    observed = np.median(proj.texture[confident], axis=0) if confident.sum() > 100 else None
    index, rule = bank.select(embedding, observed)
    background = bank.texture(index, model, size, gen_size=config.gen_size)

    omega = (conf >= config.blend_threshold) & chart
    if config.erode > 0:
        k = 2 * int(config.erode) + 1
        omega = cv2.erode(omega.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    pairs = seam_pairs(sampling, model.vertices, model.faces) if config.seams else None
    blended, info = poisson_blend(proj.texture, background, omega, domain=chart, source_valid=conf > 0,
                                  seam_pairs=pairs, config=config.poisson, return_info=True)
    if config.fade > 0:
        s = np.clip((conf - config.blend_threshold) / config.fade, 0.0, 1.0)
        s = (s * s * (3 - 2 * s))[..., None] * omega[..., None]
        blended = background + s * (blended - background)
    pad = config.pad if config.pad is not None else max(2, size // 256)
    diffuse = dilate_texture(np.clip(blended, 0.0, 1.0), chart, iterations=pad)
    return TextureResult(diffuse=diffuse.astype(np.float32), confidence=conf, blend_mask=omega,
                         bank_index=index, bank_rule=rule, projected=proj, info=info)


def _to_uint8(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if not np.isfinite(a).all():
        raise ValueError("image contains non-finite values")
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _write_png(path, arr8) -> None:
    from digitaltwin_jax.io.images import write_image  # atomic (temp file + os.replace)

    write_image(path, arr8)


def write_texture(path, texture) -> None:
    """Write a diffuse map ``(S, S, 3)`` (float [0, 1] or uint8) as an 8-bit RGB PNG, atomically."""
    t = np.asarray(texture)
    if t.ndim != 3 or t.shape[2] != 3:
        raise ValueError(f"texture must be (S, S, 3), got {t.shape}")
    _write_png(path, _to_uint8(t))


def write_confidence(path, confidence) -> None:
    """Write a confidence map ``(S, S)`` in [0, 1] as an 8-bit grey PNG, atomically."""
    c = np.asarray(confidence)
    if c.ndim != 2:
        raise ValueError(f"confidence must be (S, S), got {c.shape}")
    _write_png(path, _to_uint8(c))
