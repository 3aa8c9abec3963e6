"""Render a camera-frame mesh to an RGB image: perspective z-buffer rasterisation, UV texture or
vertex colours, Lambert diffuse + optional Blinn-Phong specular, optional supersampling.

Used for avatar previews and by the synthetic face-image engine (paper section 3.2, which renders
textured heads under varied pose, lighting and field of view).  Images are float32 HWC in [0, 1];
the camera is OpenCV's (``K`` as in :mod:`digitaltwin_jax.camera`, x right, y down, z forward).
"""
from __future__ import annotations

import cv2
import numpy as np

from digitaltwin_jax.geometry.rasterize import rasterize
from digitaltwin_jax.render.shading import blinn_phong, lambert, sample_texture, vertex_normals

__all__ = ["project_points", "render_mesh", "DEFAULT_LIGHT_DIR"]

# Toward the light, camera frame: from above (-y), slightly left (-x), from the camera side (-z).
DEFAULT_LIGHT_DIR = (-0.3, -0.5, -1.0)


def project_points(vertices_cam, K) -> np.ndarray:
    """Camera-frame points ``(V, 3)`` to screen points ``(V, 3) float64`` ``[x px, y px, z]``.

    Points with ``z <= 0`` get ``x = y = nan`` (they are behind the camera)."""
    v = np.asarray(vertices_cam, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices_cam must have shape (V, 3), got {v.shape}")
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {K.shape}")
    uvw = v @ K.T
    z = v[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = uvw[:, :2] / uvw[:, 2:3]
    xy[z <= 0] = np.nan
    return np.concatenate([xy, z[:, None]], axis=1)


def render_mesh(
    vertices_cam,
    faces,
    K,
    image_size,
    *,
    uvs=None,
    uv_faces=None,
    texture=None,
    vertex_colors=None,
    light_dir=DEFAULT_LIGHT_DIR,
    ambient: float = 0.35,
    diffuse: float = 0.65,
    specular: float = 0.0,
    shininess: float = 32.0,
    two_sided: bool = True,
    background=None,
    supersample: int = 1,
    cull_backfaces: bool = False,
    return_fragments: bool = False,
):
    """Render a mesh given in the camera frame.

    Colour = albedo * (ambient + diffuse * max(0, n.l)) + specular * max(0, n.h)^shininess, clipped to
    [0, 1]; n is the interpolated vertex normal, l = ``light_dir``, h the half vector with the
    direction to the eye.  Albedo: the bilinearly sampled ``texture`` at the interpolated UV if given,
    else the interpolated ``vertex_colors``, else 0.8 grey.

    Args:
      vertices_cam: ``(V, 3) float`` camera-frame positions (mm), z > 0 in front of the camera.
      faces: ``(F, 3) int`` counter-clockwise seen from outside.
      K: ``(3, 3)`` intrinsics for ``image_size``.
      image_size: ``(h, w)`` of the output.
      uvs: ``(T, 2) float`` OBJ UVs (v up) -- with ``uv_faces`` and ``texture``.
      uv_faces: ``(F, 3) int`` indices into ``uvs`` (defaults to ``faces`` when ``uvs`` has V rows).
      texture: ``(Ht, Wt, 3)`` float in [0, 1] or uint8.
      vertex_colors: ``(V, 3)`` float in [0, 1].
      light_dir: ``(3,)`` toward the light, camera frame.
      ambient, diffuse, specular, shininess: lighting weights (see formula).
      two_sided: light back faces with flipped normals.
      background: None (black), a ``(3,)`` colour or an ``(h, w, 3)`` float image.
      supersample: render at ``supersample`` times the resolution and box-filter down (anti-aliasing).
      cull_backfaces: skip faces turned away from the camera (closed meshes only).
      return_fragments: also return the (supersampled) :class:`Fragments`.

    Returns:
      ``(image, mask)``: ``(h, w, 3) float32`` composited image and ``(h, w) float32`` coverage in
      [0, 1] (fractional on anti-aliased edges); plus the fragments when ``return_fragments``.
    """
    h, w = (int(s) for s in image_size)
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    if np.asarray(vertices_cam).dtype.kind not in "iuf":
        raise TypeError(f"vertices_cam must be a real numeric array, got dtype {np.asarray(vertices_cam).dtype}")
    v = np.asarray(vertices_cam, dtype=np.float64)
    faces = np.asarray(faces)
    pts = project_points(v, K)  # checks the shapes of v and K
    if not np.isfinite(np.asarray(K, dtype=np.float64)).all():
        raise ValueError("K contains NaN or infinity")
    if faces.size and (faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu"
                       or faces.min() < 0 or faces.max() >= len(v)):
        raise ValueError(f"faces must be an (F, 3) integer array of indices in [0, {len(v)}); got "
                         f"shape {faces.shape}, dtype {faces.dtype}")
    if s > 1:
        pts[:, :2] *= s
    used = np.zeros(v.shape[0], bool)
    used[faces.ravel()] = True
    if not np.isfinite(v[used]).all():
        raise ValueError("vertices_cam contains non-finite values")
    pts[~np.isfinite(pts)] = -1e9  # behind-camera vertices: their faces fail the depth test
    pts[:, 2] = v[:, 2]
    frags = rasterize(pts, faces, h * s, w * s, perspective=True, cull_backfaces=cull_backfaces)

    H, W = h * s, w * s
    idx = np.flatnonzero(frags.face_id.ravel() >= 0)
    color = np.zeros((H * W, 3), np.float32)
    if idx.size:
        fid = frags.face_id.ravel()[idx]
        b = frags.bary.reshape(-1, 3)[idx]
        normals = vertex_normals(v, faces)
        corners = faces[fid]
        n = _interp(b, normals, corners)
        p = _interp(b, v.astype(np.float32), corners)
        view = -p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        if two_sided:
            n *= np.where(np.einsum("nc,nc->n", n, view) < 0, -1.0, 1.0)[:, None].astype(np.float32)
        albedo = _albedo(fid, b, faces, v.shape[0], uvs, uv_faces, texture, vertex_colors)
        shade = albedo * (ambient + diffuse * lambert(n, light_dir))[:, None]
        if specular > 0:
            shade += specular * blinn_phong(n, light_dir, view, shininess)[:, None]
        color[idx] = np.clip(shade, 0.0, 1.0)
    color = color.reshape(H, W, 3)
    cover = (frags.face_id >= 0).astype(np.float32)
    if s > 1:  # exact box filter for an integer factor
        color = cv2.resize(color, (w, h), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    image = color + (1.0 - cover)[..., None] * _background(background, h, w)
    out = (image.astype(np.float32), cover)
    return out + (frags,) if return_fragments else out


def _interp(b, values, corners):
    """``sum_k b[:, k] * values[corners[:, k]]`` for ``(N, 3)`` barycentrics and corner indices."""
    out = np.take(values, corners[:, 0], axis=0) * b[:, 0:1]
    out += np.take(values, corners[:, 1], axis=0) * b[:, 1:2]
    out += np.take(values, corners[:, 2], axis=0) * b[:, 2:3]
    return out


def _albedo(fid, b, faces, nv, uvs, uv_faces, texture, vertex_colors):
    if texture is not None:
        if uvs is None:
            raise ValueError("texture given without uvs")
        uvs = np.asarray(uvs, np.float32)
        if uv_faces is None:
            if uvs.shape[0] != nv:
                raise ValueError("uv_faces is required when uvs does not have one row per vertex")
            uv_faces = faces
        uv_faces = np.asarray(uv_faces)
        if uv_faces.shape != faces.shape:
            raise ValueError(f"uv_faces must have the shape of faces {faces.shape}, got {uv_faces.shape}")
        uv = _interp(b, uvs, uv_faces[fid])
        tex = sample_texture(texture, uv)
        if tex.ndim == 1:
            tex = np.repeat(tex[:, None], 3, axis=1)
        return tex[:, :3]
    if vertex_colors is not None:
        vc = np.asarray(vertex_colors, np.float32)
        if vc.shape != (nv, 3):
            raise ValueError(f"vertex_colors must have shape ({nv}, 3), got {vc.shape}")
        return _interp(b, vc, faces[fid])
    return np.full((fid.size, 3), 0.8, np.float32)


def _background(background, h, w):
    if background is None:
        return np.zeros((1, 1, 3), np.float32)
    bg = np.asarray(background, np.float32)
    if bg.shape in ((3,), ()):
        return np.broadcast_to(bg, (3,)).reshape(1, 1, 3)
    if bg.shape != (h, w, 3):
        raise ValueError(f"background must be None, (3,) or ({h}, {w}, 3), got {bg.shape}")
    return bg
