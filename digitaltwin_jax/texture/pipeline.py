"""The texture stage of the avatar (paper section 3.5): projected selfie texture (foreground) +
bank texture (background) -> one UV diffuse map, blended with Poisson image editing.

Steps of :func:`build_texture`:
  1. :func:`~.projection.project_texture`: colours and confidence per texel; with ``delight``
     (off by default) the photo's low-frequency shading is fitted as spherical harmonics of the normals and
     divided out (:mod:`.delight`; ``TextureResult.lighting`` keeps it, :func:`relight_texture`
     puts it back);
  2. bank entry: closest identity embedding (L1), else closest skin tone (see :mod:`.bank`);
  3. colour transfer (``color_transfer``, :func:`~.color.transfer_color`): the bank texture is
     shifted in CIELAB so that its median over the confidently seen texels equals the photo's there,
     so neck, ears and scalp take the face's tone;
  4. photo region Omega = texels with confidence >= ``blend_threshold`` (eroded by ``erode`` texels
     so grazing-angle silhouette texels stay out), inside the UV charts;
  5. ``blend="band"`` (default, :func:`~.blend.band_blend`): Omega keeps the photo; the bank adapts to
     it in a band of ``band_width`` texels (Poisson with the bank's gradients, the border mismatch
     smoothed along the border by ``edge_sigma``), and a ``feather`` of a few texels inside Omega
     hides the rest.  ``blend="poisson"`` (the paper's wording, earlier default):
     :func:`~.poisson.poisson_blend` of the projection into the bank over the whole of Omega, then
     confidence feathering ``out = bank + s(c) (blend - bank)`` with ``s`` ramping from 0 at the
     threshold to 1 at ``threshold + fade``; this pulls the whole face toward the bank's tone;
     both: zero flux at chart borders, texels coupled across UV seams;
  6. chart padding (:func:`~.seams.dilate_texture`) so bilinear filtering and mipmaps show no dark
     cracks along UV seams.

Texel widths (``band_width``, ``edge_sigma``, ``feather``) are given for a 2048 map and scale with
``size``.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.texture.bank import BankEntry, TextureBank, default_texture_bank
from digitaltwin_jax.texture.cache import TextureCache
from digitaltwin_jax.texture.blend import band_blend
from digitaltwin_jax.texture.color import transfer_color
from digitaltwin_jax.render.colorspace import linear_to_srgb, srgb_to_linear
from digitaltwin_jax.texture.delight import DelightConfig, SHShading, estimate_shading
from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend
from digitaltwin_jax.texture.projection import ProjectedTexture, ProjectionConfig, project_texture
from digitaltwin_jax.texture.seams import dilate_texture, seam_pairs
from digitaltwin_jax.texture.uv import UVSampling, uv_sampling

__all__ = [
    "TextureConfig", "TextureResult", "build_texture", "relight_texture", "write_texture", "write_confidence",
    "add_photo_entry",
]


@dataclasses.dataclass(frozen=True)
class TextureConfig:
    """Settings of :func:`build_texture` (defaults: paper's 2048 x 2048 diffuse map).

    Attributes:
      size: texture side in texels.
      blend_threshold: confidence (cos of the view angle) from which the photo is used.
      blend: ``"band"`` (photo kept, the bank adapts in a band) or ``"poisson"`` (whole-region
        Poisson cloning into the bank); see the module docstring.
      color_transfer: shift the bank's CIELAB median to the observed face's before blending.
      band_width: ``"band"``: width of the adapting bank band (texels at 2048).
      edge_sigma: ``"band"``: smoothing of the border mismatch along the border (texels at 2048).
      feather: ``"band"``: photo-side feather width (texels at 2048).
      fade: ``"poisson"``: width of the confidence ramp above the threshold.
      erode: texels removed from the border of the blend region.
      pad: chart padding in texels (default ``size // 256``, at least 2).
      seams: couple texels across UV seams in the Poisson solve.
      gen_size: resolution at which procedural bank entries are evaluated.
      projection: :class:`~.projection.ProjectionConfig`.
      poisson: :class:`~.poisson.PoissonConfig`.
      delight: :class:`~.delight.DelightConfig` to divide the fitted spherical-harmonic shading out
        of the projected colours before blending, or None (default: keep the photo's shading; the
        map then re-renders the photo from its camera: 28.1 / 27.2 dB on the two example photos
        against 20.4 / 21.7 dB de-lit, while de-lit maps recover albedo better, 31.3 against 24.2 dB
        on synthetic renders; docs page "Texture").
    """

    size: int = 2048
    blend_threshold: float = 0.25
    blend: str = "band"
    color_transfer: bool = True
    band_width: float = 96.0
    edge_sigma: float = 24.0
    feather: float = 8.0
    fade: float = 0.15
    erode: int = 1
    pad: int | None = None
    seams: bool = True
    gen_size: int = 512
    projection: ProjectionConfig = ProjectionConfig()
    poisson: PoissonConfig = PoissonConfig()
    delight: DelightConfig | None = None

    def __post_init__(self):
        if self.blend not in ("band", "poisson"):
            raise ValueError(f"blend must be 'band' or 'poisson', got {self.blend!r}")
        if int(self.size) < 2:
            raise ValueError(f"size must be >= 2, got {self.size}")
        for name in ("band_width", "edge_sigma", "feather", "fade"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class TextureResult:
    """Output of :func:`build_texture`.

    Attributes:
      diffuse: ``(S, S, 3) float32`` sRGB diffuse map in [0, 1] (OBJ UV convention).
      confidence: ``(S, S) float32`` projection confidence in [0, 1].
      blend_mask: ``(S, S) bool`` the Poisson region Omega.
      bank_index: index of the bank entry used for the unseen areas.
      bank_rule: ``"identity"``, ``"tone"`` or ``"default"``.
      projected: the :class:`~.projection.ProjectedTexture` (raw photo colours, before de-lighting).
      info: solver details (Poisson method, unknowns, iterations).
      lighting: the :class:`~.delight.SHShading` divided out of the photo by de-lighting (camera
        frame), or None; :func:`relight_texture` puts it back.
    """

    diffuse: np.ndarray
    confidence: np.ndarray
    blend_mask: np.ndarray
    bank_index: int
    bank_rule: str
    projected: ProjectedTexture
    info: dict
    lighting: SHShading | None = None


def build_texture(image, vertices_cam, K, model, *, bank: TextureBank | None = None, embedding=None,
                  config: TextureConfig = TextureConfig(), sampling: UVSampling | None = None,
                  image_mask=None, cache: TextureCache | None = None) -> TextureResult:
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
      cache: a :class:`~.cache.TextureCache` shared by calls on the same model and size (UV
        sampling, seam pairs and baked bank entries are then computed once; same result).

    Returns:
      :class:`TextureResult`.
    """
    size = int(config.size)
    if sampling is None:
        sampling = cache.sampling(model, size) if cache is not None else uv_sampling(model.uvs, model.uv_faces, size)
    proj = project_texture(image, vertices_cam, K, model, size, config=config.projection,
                           sampling=sampling, image_mask=image_mask)
    conf = proj.confidence
    chart = proj.chart_mask
    photo, lighting = proj.texture, None
    if config.delight is not None:
        photo, lighting = _delight(proj, sampling, vertices_cam, model, config.delight)
    bank = bank if bank is not None else default_texture_bank()
    confident = conf >= 0.5
    observed = np.median(proj.texture[confident], axis=0) if confident.sum() > 100 else None
    index, rule = bank.select(embedding, observed)
    if config.color_transfer and confident.sum() > 100:
        background = _recoloured_bank(bank, index, model, size, config.gen_size, photo, confident & chart, cache)
    else:
        background = _bank_texture(bank, index, model, size, config.gen_size, cache)

    omega = (conf >= config.blend_threshold) & chart
    if config.erode > 0:
        k = 2 * int(config.erode) + 1
        omega = cv2.erode(omega.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    pairs = None
    if config.seams:
        pairs = (cache.seam_pairs(model, size) if cache is not None and sampling is cache.sampling(model, size)
                 else seam_pairs(sampling, model.vertices, model.faces))
    if config.blend == "band":
        scale = size / 2048.0
        blended, info = band_blend(photo, background, omega, chart, width=config.band_width * scale,
                                   sigma=config.edge_sigma * scale, feather=config.feather * scale,
                                   seam_pairs=pairs, coarse=max(1, round(4 * scale)), config=config.poisson)
        info.pop("band")
    else:
        blended, info = poisson_blend(photo, background, omega, domain=chart, source_valid=conf > 0,
                                      seam_pairs=pairs, config=config.poisson, return_info=True)
        if config.fade > 0:
            s = np.clip((conf - config.blend_threshold) / config.fade, 0.0, 1.0)
            s = (s * s * (3 - 2 * s))[..., None] * omega[..., None]
            blended = background + s * (blended - background)
    pad = config.pad if config.pad is not None else max(2, size // 256)
    plan = cache.dilation(model, size, pad) if cache is not None and sampling is cache.sampling(model, size) else None
    blended = np.clip(blended, 0.0, 1.0, out=blended)  # in place: blended is this call's own array
    diffuse = dilate_texture(blended, chart, iterations=pad, plan=plan, in_place=blended.dtype == np.float32)
    return TextureResult(diffuse=diffuse.astype(np.float32, copy=False), confidence=conf, blend_mask=omega,
                         bank_index=index, bank_rule=rule, projected=proj, info=info, lighting=lighting)


def _texel_normals(sampling: UVSampling, texels, vertices_cam, model) -> np.ndarray:
    """``(N, 3) float32`` unit camera-frame normals at the flat texel indices ``texels`` (sorted,
    covered by ``sampling``)."""
    from digitaltwin_jax.render.shading import vertex_normals
    from digitaltwin_jax.texture.uv import texel_interpolate

    rows = np.searchsorted(sampling.texels, texels)
    sub = dataclasses.replace(sampling, texels=texels, face=sampling.face[rows], bary=sampling.bary[rows])
    faces = np.asarray(model.faces)
    n = texel_interpolate(sub, vertex_normals(np.asarray(vertices_cam, np.float64), faces), faces)
    return n / np.maximum(np.sqrt(np.einsum("nk,nk->n", n, n)), 1e-12)[:, None]


def _delight(proj: ProjectedTexture, sampling: UVSampling, vertices_cam, model, config: DelightConfig):
    """De-lit photo map and the fitted :class:`~.delight.SHShading` (see :mod:`.delight`)."""
    conf = proj.confidence.ravel()
    idx = np.flatnonzero(conf > 0)
    if idx.size < 100:
        return proj.texture, None
    normals = _texel_normals(sampling, idx, vertices_cam, model)
    colours = proj.texture.reshape(-1, 3)[idx]
    lighting = estimate_shading(colours, normals, conf[idx], config)
    photo = proj.texture.copy()
    photo.reshape(-1, 3)[idx] = linear_to_srgb(srgb_to_linear(colours) / lighting.relative(normals))
    return photo, lighting


def relight_texture(texture, lighting: SHShading, vertices_cam, model, *, sampling: UVSampling | None = None):
    """Put the photo's fitted shading back on a de-lit map (e.g. to compare a re-render with the photo).

    Args:
      texture: ``(S, S, 3)`` float [0, 1] or uint8 sRGB map (``TextureResult.diffuse``).
      lighting: ``TextureResult.lighting``.
      vertices_cam: ``(V, 3)`` the fitted mesh in the camera frame; model: its head model.
      sampling: ``uv_sampling(model.uvs, model.uv_faces, S)`` if already at hand.

    Returns:
      ``(S, S, 3) float32`` sRGB: ``linear(texture) * max(S(n) / s, min_shading)`` on the texels of
      triangles facing the camera (the photo lit only those), the texture elsewhere.
    """
    t = np.asarray(texture)
    t = t.astype(np.float32) / 255.0 if t.dtype == np.uint8 else t.astype(np.float32)
    if t.ndim != 3 or t.shape[2] != 3 or t.shape[0] != t.shape[1]:
        raise ValueError(f"texture must be (S, S, 3), got {t.shape}")
    size = t.shape[0]
    if sampling is None:
        sampling = uv_sampling(model.uvs, model.uv_faces, size)
    v = np.asarray(vertices_cam, np.float64)
    faces = np.asarray(model.faces)
    tri = v[faces]
    facing = np.einsum("fk,fk->f", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), tri.mean(axis=1)) < 0
    idx = sampling.texels[facing[sampling.face]]
    out = t.copy()
    flat = out.reshape(-1, 3)
    rel = lighting.relative(_texel_normals(sampling, idx, v, model))
    flat[idx] = linear_to_srgb(srgb_to_linear(flat[idx]) * rel)
    return out


def _bank_texture(bank, index, model, size, gen_size, cache) -> np.ndarray:
    if cache is not None:
        return cache.bank_texture(bank, index, model, size, gen_size)
    return bank.texture(index, model, size, gen_size=gen_size)


def _recoloured_bank(bank, index, model, size, gen_size, photo, seen, cache=None) -> np.ndarray:
    """Bank entry ``index`` at ``size`` with the CIELAB median of the photo's ``seen`` texels
    (:func:`~.color.transfer_color`).  A procedural entry is evaluated at ``gen_size`` and resized
    bicubically anyway, so it is recoloured before the resize (16x fewer texels at 2048)."""
    gen = int(min(gen_size, size))
    if bank.entries[index].procedural and gen < size:
        small = _bank_texture(bank, index, model, gen, gen, cache)
        seen_small = cv2.resize(seen.astype(np.float32), (gen, gen), interpolation=cv2.INTER_AREA) > 0.5
        small = transfer_color(small, photo, seen_small, reference_region=seen)
        big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        return np.clip(big, 0.0, 1.0, out=big)
    return transfer_color(_bank_texture(bank, index, model, size, gen_size, cache), photo, seen)


def _to_uint8(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if not np.isfinite(a).all():
        raise ValueError("image contains non-finite values")
    t = np.clip(a, 0.0, 1.0)  # (clip(a) * 255 + 0.5) truncated, with one temporary instead of three
    t *= 255.0
    t += 0.5
    return t.astype(np.uint8)


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


def add_photo_entry(bank: TextureBank, name: str, image, vertices_cam, K, model, embedding=None, *,
                    size: int = 1024, config=None) -> TextureBank:
    """Bake a photo into a new bank entry through the texture pipeline (projection, fill of the
    unseen areas from the current bank, Poisson blending) and append it.

    Args:
      bank: current bank (fills what the photo does not show).
      name: entry name.
      image, vertices_cam, K: the photo and the fitted mesh / camera (see :func:`.build_texture`).
      model: head model.
      embedding: ``(128,)`` identity embedding of the photo (from the face front end), or None.
      size: resolution of the stored map (uint8).
      config: :class:`TextureConfig` (its ``size`` is replaced by ``size``).

    Returns:
      a new :class:`~.bank.TextureBank` with the entry appended.
    """
    cfg = dataclasses.replace(config or TextureConfig(), size=size)
    res = build_texture(image, vertices_cam, K, model, bank=bank, embedding=embedding, config=cfg)
    tex8 = (np.clip(res.diffuse, 0, 1) * 255 + 0.5).astype(np.uint8)
    emb = None if embedding is None else np.asarray(embedding, np.float32).ravel()
    skin = res.projected.texture[res.projected.confidence > 0.5]
    base = np.median(skin, axis=0).astype(np.float32) if len(skin) else None
    return bank.with_entry(BankEntry(name=name, embedding=emb, texture=tex8, base_color=base))
