"""Project the photo into the head model's UV space (paper section 3.5, first step: "we project
selfie texture to the UV space of the generic model using the estimated camera intrinsic, head pose,
facial expression and per-vertex correction").

For every texel covered by the UV layout (:mod:`.uv`): its 3-D point on the fitted mesh (camera
frame) is projected with ``K``; it is *visible* when it faces the camera and its depth is within a
tolerance of the depth buffer rendered from the same camera (self-occlusion by the nose, the cheek at
yaw, ...: the 2x2 pixel footprint's nearest depth is used, so texels at an occlusion edge count as
hidden); its colour is the bilinear sample of the photo.  Confidence = cos(angle between the surface
normal and the ray to the camera), zero below ``min_cos``, outside the photo, where hidden, on the eye
regions (the paper renders no eye models and masks the eyes) and on surfaces no camera sees from
outside (``model.outer_surface_mask``: nostril tunnels, inner lips).

Images: uint8 RGB or float in [0, 1], HWC.  Texture maps: ``(S, S, 3)`` float32 in [0, 1], row 0 at
v = 1 (OBJ convention).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.render.rasterize import rasterize
from digitaltwin_jax.render.renderer import project_points
from digitaltwin_jax.render.shading import bilinear, vertex_normals
from digitaltwin_jax.texture.uv import UVSampling, scatter_texels, texel_interpolate, uv_sampling

__all__ = ["ProjectionConfig", "ProjectedTexture", "project_texture", "as_float_image"]


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    """Settings of :func:`project_texture`.

    Attributes:
      min_cos: texels seen at a grazing angle with cos below this get zero confidence.
      depth_rel_tol: visibility tolerance as a fraction of the texel's depth.
      depth_abs_tol: visibility tolerance added in mm.
      mask_eyes: zero confidence on ``model.eye_mask`` (weighted by the interpolated mask).
      mask_inner_surfaces: zero confidence off ``model.outer_surface_mask`` when the model has it.
    """

    min_cos: float = 0.15
    depth_rel_tol: float = 0.01
    depth_abs_tol: float = 1.0
    mask_eyes: bool = True
    mask_inner_surfaces: bool = True


@dataclasses.dataclass(frozen=True)
class ProjectedTexture:
    """Result of :func:`project_texture`.

    Attributes:
      texture: ``(S, S, 3) float32`` projected colours in [0, 1] (0 where confidence is 0).
      confidence: ``(S, S) float32`` in [0, 1].
      chart_mask: ``(S, S) bool`` texels covered by the UV layout.
      sampling: the :class:`~digitaltwin_jax.texture.uv.UVSampling` used (reusable).
    """

    texture: np.ndarray
    confidence: np.ndarray
    chart_mask: np.ndarray
    sampling: UVSampling


def as_float_image(image) -> np.ndarray:
    """``(H, W, 3)`` float32 in [0, 1] from uint8 or float RGB (alpha dropped); ValueError otherwise."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"image must be uint8 or float, got {img.dtype}")
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise ValueError("image contains non-finite values")
    return img


def project_texture(image, vertices_cam, K, model, size: int = 2048, *,
                    config: ProjectionConfig = ProjectionConfig(), sampling: UVSampling | None = None,
                    image_mask=None) -> ProjectedTexture:
    """Project a photo onto the UV layout of ``model`` through the fitted camera.

    Args:
      image: ``(H, W, 3)`` uint8 or float [0, 1] RGB photo.
      vertices_cam: ``(V, 3)`` fitted mesh in the camera frame (mm; ``R(q) P + t``), z > 0.
      K: ``(3, 3)`` intrinsics of ``image``.
      model: a :class:`~digitaltwin_jax.model.HeadModel` (uses ``faces``, ``uvs``, ``uv_faces``,
        ``eye_mask`` and, if present, ``outer_surface_mask``) or any object with those attributes.
      size: side of the square texture in texels.
      config: :class:`ProjectionConfig`.
      sampling: a precomputed ``uv_sampling(model.uvs, model.uv_faces, size)`` (saves ~0.3 s at 2048).
      image_mask: optional ``(H, W) bool`` photo pixels that may be used (e.g. skin segmentation or
        the paper's eye masks from detected landmarks); False pixels give zero confidence.

    Returns:
      :class:`ProjectedTexture`.
    """
    img = as_float_image(image)
    h, w = img.shape[:2]
    faces = np.asarray(model.faces)
    v = np.asarray(vertices_cam, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices_cam must have shape (V, 3), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices_cam contains non-finite values")
    if faces.size and faces.max() >= v.shape[0]:
        raise ValueError(f"model.faces index {faces.max()} but vertices_cam has {v.shape[0]} rows")
    if sampling is None:
        sampling = uv_sampling(model.uvs, model.uv_faces, size)
    elif sampling.size != size:
        raise ValueError(f"sampling was built for size {sampling.size}, not {size}")
    if image_mask is not None:
        image_mask = np.asarray(image_mask, bool)
        if image_mask.shape != (h, w):
            raise ValueError(f"image_mask must have shape {(h, w)}, got {image_mask.shape}")

    # depth buffer of the fitted mesh seen by the camera
    screen = project_points(v, K)
    screen[~np.isfinite(screen)] = -1e9
    screen[:, 2] = v[:, 2]
    zbuf = rasterize(screen, faces, h, w, perspective=True).depth

    # only texels of triangles turned toward the camera and inside the photo can be seen
    tri = v[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    facing = np.einsum("fk,fk->f", fn, tri.mean(axis=1)) < 0
    sx, sy = screen[faces, 0], screen[faces, 1]
    on_image = (sx.max(1) >= 0) & (sx.min(1) <= w) & (sy.max(1) >= 0) & (sy.min(1) <= h) & (tri[:, :, 2] > 0).all(1)
    candidate = facing & on_image
    eye_w = getattr(model, "eye_mask", None) if config.mask_eyes else None
    outer = getattr(model, "outer_surface_mask", None) if config.mask_inner_surfaces else None
    # triangles that touch no usable photo pixel are skipped (the result is unchanged: a texel
    # projects inside its triangle's screen box, and its confidence is multiplied by the mask there)
    if image_mask is not None:
        candidate &= _box_touches(image_mask, sx, sy, candidate)
    keep = np.flatnonzero(candidate[sampling.face])
    all_texels = sampling
    sampling = dataclasses.replace(sampling, texels=sampling.texels[keep], face=sampling.face[keep],
                                   bary=sampling.bary[keep])

    # every per-vertex attribute in one gather: position, normal, eye weight, outer-surface weight
    cols = [v, vertex_normals(v, faces)]
    if eye_w is not None:
        cols.append(np.asarray(eye_w, np.float64)[:, None])
    if outer is not None:
        cols.append(np.asarray(outer, np.float64)[:, None])
    X = texel_interpolate(sampling, np.concatenate(cols, axis=1), faces)
    P = X[:, 0:3]  # (N, 3) camera-frame points
    N = X[:, 3:6]  # interpolated vertex normals (not unit length)
    z = P[:, 2]
    front = z > 1e-6
    zs = np.where(front, z, 1.0)
    uvw = P @ np.asarray(K, np.float32).T
    x = uvw[:, 0] / zs
    y = uvw[:, 1] / zs
    # cos of the angle between the normal and the ray to the camera: -N.P / (|N| |P|), no unit copies
    cos = -np.einsum("nk,nk->n", N, P) / np.maximum(
        np.sqrt(np.einsum("nk,nk->n", N, N) * np.einsum("nk,nk->n", P, P)), 1e-24)
    inside = front & (x >= 0) & (x <= w) & (y >= 0) & (y <= h)

    # visibility: nearest depth over the 2x2 pixel footprint of the bilinear sample
    xi = np.clip(np.floor(x - 0.5).astype(np.int64), -1, w - 1)
    yi = np.clip(np.floor(y - 0.5).astype(np.int64), -1, h - 1)
    zpad = np.pad(zbuf, ((1, 1), (1, 1)), constant_values=np.inf)
    # the 2x2 minimum once per pixel, then one gather per texel
    zmin = np.minimum(np.minimum(zpad[:-1, :-1], zpad[:-1, 1:]), np.minimum(zpad[1:, :-1], zpad[1:, 1:]))
    d = np.take(zmin.ravel(), (yi + 1) * (w + 1) + (xi + 1))
    visible = inside & (z <= d + config.depth_rel_tol * z + config.depth_abs_tol)

    conf = np.where(visible & (cos >= config.min_cos), cos, 0.0).astype(np.float32)
    k = 6
    if eye_w is not None:
        conf *= np.clip(1.0 - X[:, k], 0.0, 1.0)
        k += 1
    if outer is not None:
        conf *= np.clip(X[:, k], 0.0, 1.0)
    if image_mask is not None:
        xm = np.clip(x.astype(np.int64), 0, w - 1)
        ym = np.clip(y.astype(np.int64), 0, h - 1)
        conf *= image_mask[ym, xm]
    colour = np.zeros((len(conf), 3), np.float32)
    seen = np.flatnonzero(conf > 0)  # sample the photo only where it is used
    colour[seen] = bilinear(img, x[seen] - 0.5, y[seen] - 0.5)
    return ProjectedTexture(
        texture=scatter_texels(sampling, colour),
        confidence=scatter_texels(sampling, conf),
        chart_mask=all_texels.chart_mask,
        sampling=all_texels,
    )


def _box_touches(mask, sx, sy, which) -> np.ndarray:
    """``(F,) bool``: triangle ``f`` (screen corners ``sx[f], sy[f]``, ``(F, 3)``) has a True pixel of
    ``mask`` ``(H, W)`` in its screen bounding box grown by one pixel (only rows ``which`` are tested;
    the others are False).  One summed-area table, four look-ups per triangle."""
    h, w = mask.shape
    out = np.zeros(len(sx), bool)
    idx = np.flatnonzero(which)
    if idx.size == 0:
        return out
    sat = np.zeros((h + 1, w + 1), np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    x0 = np.clip(np.floor(sx[idx].min(1)) - 1, 0, w - 1).astype(np.int64)
    x1 = np.clip(np.floor(sx[idx].max(1)) + 1, 0, w - 1).astype(np.int64) + 1
    y0 = np.clip(np.floor(sy[idx].min(1)) - 1, 0, h - 1).astype(np.int64)
    y1 = np.clip(np.floor(sy[idx].max(1)) + 1, 0, h - 1).astype(np.int64) + 1
    out[idx] = (sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]) > 0
    return out
