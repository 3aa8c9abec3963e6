"""Differentiable rendering in JAX: hard z-buffer visibility held fixed, differentiable barycentrics,
attribute interpolation, bilinear texture sampling, Lambert and second-order spherical-harmonics
(SH) shading, an optional Blinn-Phong highlight, and a soft silhouette for edge gradients (issue 30).

The split follows pytorch3d's hard rasteriser and nvdiffrast: *which* triangle covers a pixel is a
discrete choice, taken by the numpy z-buffer of :mod:`digitaltwin_jax.geometry.rasterize` (the one
scan-conversion primitive of the package; :func:`face_ids` calls it from traced code with
``jax.pure_callback`` under ``stop_gradient``) and held fixed while a step is taken; *where* in that
triangle the pixel centre lies (its barycentrics), and everything computed from them, is a
differentiable function of the vertices.  Gradients across silhouettes come from
:func:`soft_coverage`.

Conventions (those of :mod:`digitaltwin_jax.geometry.rasterize` and
:mod:`digitaltwin_jax.render.renderer`):
  * screen points ``(V, 3) float32``: ``[x px, y px, z]`` with ``x`` the column, ``y`` the row,
    origin at the top-left image corner, pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``; ``z`` the
    camera depth (OpenCV camera, z forward);
  * images float32 HWC in [0, 1]; pixels are handled as flat lists ``(P, 2)`` of pixel-centre
    coordinates so that the same code renders a full image (:func:`pixel_grid`) or sampled pixels
    (the photometric energy);
  * ``face_id == -1`` marks an empty pixel: its barycentrics and colour are zero (no NaN, zero
    gradient);
  * SH: ``shading(n) = sum_k coeffs[k] * Y_k(n)`` with the 9 real orthonormal SH functions ``Y_k``
    of band 0-2 (:func:`sh_basis`, order ``Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22``) and
    ``coeffs (9, C)``, one column per colour channel.  :func:`sh_from_directional` gives the
    coefficients of ``ambient + diffuse * max(0, n.l)`` (Ramamoorthi & Hanrahan 2001, clamped
    cosine to band 2).

Degenerate (zero-area) triangles give zero barycentrics, never NaN, in value and gradient (the
double-where pattern).  Every function is jit- and vmap-friendly; :func:`face_ids` vmaps
sequentially (one numpy rasterisation per batch element).
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import project_pinhole
from digitaltwin_jax.geometry.mesh import vertex_normals
from digitaltwin_jax.geometry.rasterize import rasterize
from digitaltwin_jax.render.renderer import DEFAULT_LIGHT_DIR

__all__ = [
    "RenderConfig", "pixel_grid", "face_ids", "face_ids_np", "nearest_face_ids_np", "screen_points",
    "barycentrics", "interpolate", "sample_texture", "sh_basis", "sh_shading", "sh_from_directional",
    "sh_ambient", "lambert", "blinn_phong", "safe_unit", "soft_coverage", "render",
]

# A triangle is degenerate when twice its screen area is below this (px^2).
_DET_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """Shading and compositing options of :func:`render`.

    Attributes:
      two_sided: flip normals facing away from the camera (the numpy renderer's default).
      soft_sigma: width (px) of the soft silhouette; 0 disables it (hard coverage, no edge gradient).
      background: ``(3,)`` colour behind the mesh.
    """

    two_sided: bool = True
    soft_sigma: float = 0.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


def pixel_grid(height: int, width: int) -> jax.Array:
    """``(H * W, 2) float32`` pixel centres ``(j + 0.5, i + 0.5)`` in row-major order."""
    jj, ii = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return jnp.asarray(np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], axis=1))


def screen_points(vertices_cam, focal, principal):
    """Camera-frame vertices ``(V, 3)`` to screen points ``(V, 3)`` ``[f x/z + c_x, f y/z + c_y, z]``.

    ``focal``: scalar pixels; ``principal``: ``(2,)``.  Points must be in front of the camera."""
    v = jnp.asarray(vertices_cam)
    return jnp.concatenate([project_pinhole(v, focal, principal), v[:, 2:3]], axis=1)


# ----------------------------------------------------------------------------------- visibility
def face_ids_np(points_screen, faces, height: int, width: int, pixels=None) -> np.ndarray:
    """numpy z-buffer (:func:`digitaltwin_jax.geometry.rasterize.rasterize`, perspective) face ids.

    Returns ``(H * W,) int32`` in row-major pixel order, or ``(P,) int32`` at the integer pixels that
    contain ``pixels (P, 2)`` when given; ``-1`` where empty or outside the image.  Vertices with a
    non-finite position are moved behind the camera (their faces are not drawn)."""
    pts = np.array(points_screen, dtype=np.float64)
    bad = ~np.isfinite(pts).all(axis=1)
    pts[bad] = (-1e9, -1e9, -1.0)
    fid = rasterize(pts, np.asarray(faces), int(height), int(width), perspective=True).face_id.ravel()
    if pixels is None:
        return fid.astype(np.int32)
    p = np.asarray(pixels, np.float64)
    col, row = np.floor(p[:, 0]).astype(np.int64), np.floor(p[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    out = np.full(p.shape[0], -1, np.int32)
    out[inside] = fid[row[inside] * int(width) + col[inside]]
    return out


def face_ids(points_screen, faces, height: int, width: int, pixels=None) -> jax.Array:
    """:func:`face_ids_np` callable from traced code (``pure_callback``, no gradient).

    Args:
      points_screen: ``(V, 3) float`` screen points (traced).
      faces: ``(F, 3) int`` concrete numpy array; height, width: image size (static).
      pixels: optional ``(P, 2)`` pixel centres (traced); default the full grid.

    Returns:
      ``(P,) int32`` (``(H * W,)`` without ``pixels``).  Under ``vmap`` the rasteriser runs once per
      batch element.
    """
    faces_np = np.asarray(faces)
    pts = jax.lax.stop_gradient(jnp.asarray(points_screen, jnp.float32))
    n = height * width if pixels is None else pixels.shape[0]
    shape = jax.ShapeDtypeStruct((n,), jnp.int32)
    if pixels is None:
        return jax.pure_callback(lambda p: face_ids_np(p, faces_np, height, width), shape, pts,
                                 vmap_method="sequential")
    px = jax.lax.stop_gradient(jnp.asarray(pixels, jnp.float32))
    return jax.pure_callback(lambda p, q: face_ids_np(p, faces_np, height, width, q), shape, pts, px,
                             vmap_method="sequential")


def nearest_face_ids_np(face_id, height: int, width: int, max_distance: float = 3.0) -> np.ndarray:
    """For the soft silhouette: ``(H * W,) int32`` the visible face of every covered pixel, and for an
    empty pixel within ``max_distance`` px of a covered one the face of the nearest covered pixel;
    ``-1`` elsewhere."""
    fid = np.asarray(face_id).reshape(int(height), int(width))
    empty = (fid < 0).astype(np.uint8)
    if empty.all() or not empty.any():
        return fid.ravel().astype(np.int32)
    dist, labels = cv2.distanceTransformWithLabels(empty, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    # label -> the covered pixel it belongs to
    zero = np.flatnonzero(empty.ravel() == 0)
    lab_of_zero = labels.ravel()[zero]
    table = np.full(labels.max() + 1, -1, np.int64)
    table[lab_of_zero] = zero
    src = table[labels.ravel()]
    out = np.where(src >= 0, fid.ravel()[np.maximum(src, 0)], -1)
    out = np.where(dist.ravel() <= max_distance, out, -1)
    out = np.where(fid.ravel() >= 0, fid.ravel(), out)
    return out.astype(np.int32)


# ------------------------------------------------------------------------------ barycentrics
def _edge_terms(tri, pixels):
    """Screen-space barycentrics ``(P, 3)`` (affine, unclipped) and twice the signed area ``(P,)``
    with the double-where guard: degenerate triangles give zeros, also in the gradient."""
    x, y = tri[..., 0], tri[..., 1]  # (P, 3)
    e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
    det = e1x * e2y - e1y * e2x
    ok = jnp.abs(det) > _DET_EPS
    inv = jnp.where(ok, 1.0 / jnp.where(ok, det, 1.0), 0.0)
    dx, dy = pixels[:, 0] - x[:, 0], pixels[:, 1] - y[:, 0]
    w1 = (e2y * dx - e2x * dy) * inv
    w2 = (e1x * dy - e1y * dx) * inv
    w0 = jnp.where(ok, 1.0 - w1 - w2, 0.0)
    return jnp.stack([w0, w1, w2], axis=-1), ok


def barycentrics(points_screen, faces, face_id, pixels, *, perspective: bool = True, clip: bool = True):
    """Barycentrics of pixel centres in their (fixed) triangles, differentiable in ``points_screen``.

    Args:
      points_screen: ``(V, 3) float32`` screen points ``[x, y, z]``.
      faces: ``(F, 3) int``.
      face_id: ``(P,) int32`` the triangle of each pixel (``-1``: empty).
      pixels: ``(P, 2) float32`` pixel centres.
      perspective: perspective-correct weights ``b_i = (w_i / z_i) / sum_j w_j / z_j`` from the
        screen-space ``w`` (the numpy rasteriser's rule); else the affine ``w``.
      clip: clamp the screen-space weights to [0, 1] (as the numpy rasteriser does for pixel centres
        a rounding error outside their triangle); ``False`` keeps them affine, which is what a
        step needs when the triangle moves under a fixed pixel.

    Returns:
      ``(P, 3) float32`` weights summing to 1 (zeros for empty pixels and degenerate triangles).
    """
    pts = jnp.asarray(points_screen)
    fid = jnp.asarray(face_id)
    valid = fid >= 0
    tri = pts[jnp.asarray(faces)[jnp.where(valid, fid, 0)]]  # (P, 3, 3)
    w, ok = _edge_terms(tri, jnp.asarray(pixels, pts.dtype))
    if clip:
        w = jnp.clip(w[:, 1:], 0.0, 1.0)
        w = jnp.concatenate([jnp.maximum(1.0 - w[:, :1] - w[:, 1:], 0.0), w], axis=1)
    if perspective:
        z = tri[..., 2]
        zok = z > 0
        w = w * jnp.where(zok, 1.0 / jnp.where(zok, z, 1.0), 0.0)
    s = jnp.sum(w, axis=1, keepdims=True)
    sok = jnp.abs(s) > 1e-30
    b = jnp.where(sok, w / jnp.where(sok, s, 1.0), 0.0)
    return jnp.where((valid & ok)[:, None], b, 0.0)


def interpolate(bary, face_id, attributes, faces):
    """``(P, C)`` per-pixel values ``sum_k bary[:, k] * attributes[faces[face_id, k]]``.

    ``bary (P, 3)``, ``face_id (P,)``, ``attributes (V, C)``, ``faces (F, 3)`` (e.g. ``uv_faces``
    with ``attributes`` the UVs); zero for empty pixels (their barycentrics are zero)."""
    fid = jnp.asarray(face_id)
    corners = jnp.asarray(faces)[jnp.where(fid >= 0, fid, 0)]  # (P, 3)
    a = jnp.asarray(attributes)
    return jnp.einsum("pk,pkc->pc", bary, a[corners])


# --------------------------------------------------------------------------------- textures
def sample_texture(texture, uv):
    """Bilinear lookup with clamp-to-edge, the convention of
    :func:`digitaltwin_jax.render.shading.sample_texture` (OBJ UVs, v up; texel centres at
    ``((col + 0.5) / W, 1 - (row + 0.5) / H)``), differentiable in ``uv`` and ``texture``.

    Args:
      texture: ``(Ht, Wt, C) float32`` (``Ht, Wt >= 2``).
      uv: ``(..., 2) float32``.

    Returns:
      ``(..., C) float32``.
    """
    tex = jnp.asarray(texture)
    h, w = tex.shape[:2]
    x = jnp.clip(uv[..., 0] * w - 0.5, 0.0, w - 1.0)
    y = jnp.clip((1.0 - uv[..., 1]) * h - 0.5, 0.0, h - 1.0)
    x0 = jnp.minimum(jnp.floor(jax.lax.stop_gradient(x)), w - 2).astype(jnp.int32)
    y0 = jnp.minimum(jnp.floor(jax.lax.stop_gradient(y)), h - 2).astype(jnp.int32)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    a, b = tex[y0, x0], tex[y0, x0 + 1]
    c, d = tex[y0 + 1, x0], tex[y0 + 1, x0 + 1]
    top = a + (b - a) * fx
    bottom = c + (d - c) * fx
    return top + (bottom - top) * fy


# ---------------------------------------------------------------------------------- shading
_C0 = 0.5 / math.sqrt(math.pi)  # Y00
_C1 = math.sqrt(3.0 / (4.0 * math.pi))  # Y1m / (x, y, z)
_C2 = 0.5 * math.sqrt(15.0 / math.pi)  # Y2-2, Y2-1, Y21
_C20 = 0.25 * math.sqrt(5.0 / math.pi)  # Y20 / (3 z^2 - 1)
_C22 = 0.25 * math.sqrt(15.0 / math.pi)  # Y22 / (x^2 - y^2)
# Clamped-cosine convolution per band (Ramamoorthi & Hanrahan 2001): pi, 2 pi / 3, pi / 4.
_A = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
_BAND = (0, 1, 1, 1, 2, 2, 2, 2, 2)


def sh_basis(normals):
    """The 9 real orthonormal SH functions of band 0-2 at unit directions ``(..., 3)``: ``(..., 9)``.

    Order ``Y00, Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20 (3z^2 - 1), Y21 (xz),
    Y22 (x^2 - y^2)``; orthonormal on the unit sphere."""
    n = jnp.asarray(normals)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return jnp.stack(
        [
            jnp.full_like(x, _C0), _C1 * y, _C1 * z, _C1 * x,
            _C2 * x * y, _C2 * y * z, _C20 * (3.0 * z * z - 1.0), _C2 * x * z, _C22 * (x * x - y * y),
        ],
        axis=-1,
    )


def sh_shading(normals, coeffs):
    """``(..., C)`` shading ``sh_basis(normals) @ coeffs`` for ``coeffs (9, C)``."""
    return sh_basis(normals) @ jnp.asarray(coeffs)


def sh_ambient(level: float = 1.0, channels: int = 3):
    """``(9, channels)`` SH coefficients of a constant shading ``level`` (white ambient light)."""
    return jnp.zeros((9, channels), jnp.float32).at[0].set(level / _C0)


def sh_from_directional(light_dir, ambient: float = 0.35, diffuse: float = 0.65, channels: int = 3):
    """``(9, channels)`` SH coefficients of ``ambient + diffuse * max(0, n.l)``: the clamped cosine
    projected on bands 0-2 (its rest is ~6 % at most; Ramamoorthi & Hanrahan 2001)."""
    l = np.asarray(light_dir, np.float64)
    l = l / np.linalg.norm(l)
    with jax.ensure_compile_time_eval():  # constants, also when called inside jit
        y = np.asarray(sh_basis(jnp.asarray(l)), np.float64)
    c = diffuse * np.array([_A[b] for b in _BAND]) * y
    c[0] += ambient / _C0
    return jnp.asarray(np.repeat(c[:, None], channels, axis=1), jnp.float32)


def lambert(normals, light_dir):
    """``max(0, n . l)`` ``(...)`` for unit normals ``(..., 3)`` and a direction toward the light."""
    l = jnp.asarray(light_dir, jnp.float32)
    l = l / jnp.linalg.norm(l)
    return jnp.maximum(jnp.asarray(normals) @ l, 0.0)


def blinn_phong(normals, light_dir, view_dirs, shininess: float):
    """Blinn-Phong ``max(0, n.h)^shininess`` ``(...)`` with ``h = normalize(l + v)``, zero where
    ``n.l <= 0`` (the numpy renderer's :func:`digitaltwin_jax.render.shading.blinn_phong`).

    normals ``(..., 3)`` unit; light_dir ``(3,)`` toward the light; view_dirs ``(..., 3)`` unit, toward
    the eye."""
    l = jnp.asarray(light_dir, jnp.float32)
    l = l / jnp.linalg.norm(l)
    n = jnp.asarray(normals)
    hv = safe_unit(view_dirs + l)
    ndh = jnp.maximum(jnp.sum(n * hv, axis=-1), 0.0)
    ok = ndh > 0
    spec = jnp.where(ok, jnp.where(ok, ndh, 1.0) ** shininess, 0.0)
    return jnp.where(n @ l > 0, spec, 0.0)


def safe_unit(v):
    """``v / |v|`` over the last axis, 0 for zero vectors (NaN-free value and gradient: double where)."""
    sq = jnp.sum(v * v, axis=-1, keepdims=True)
    ok = sq > 1e-30
    return v * jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, sq, 1.0)), 0.0)


def soft_coverage(points_screen, faces, face_id, pixels, sigma: float, covered):
    """Soft silhouette ``(P,) float32``: 1 on covered pixels, ``sigmoid(-d / sigma)`` on empty ones,
    with ``d`` the distance (px) from the pixel centre to the triangle given by ``face_id`` (from
    :func:`nearest_face_ids_np`: the nearest covered pixel's face), 0 where ``face_id == -1``.

    ``covered (P,) bool`` the hard coverage.  Moving an edge toward an empty pixel raises its
    coverage: this is what gives silhouette gradients (SoftRas-style, with one candidate face)."""
    pts = jnp.asarray(points_screen)
    fid = jnp.asarray(face_id)
    valid = fid >= 0
    tri = pts[jnp.asarray(faces)[jnp.where(valid, fid, 0)], :2]  # (P, 3, 2)
    p = jnp.asarray(pixels, pts.dtype)[:, None, :]
    a, b = tri, jnp.roll(tri, -1, axis=1)
    ab = b - a
    ll = jnp.sum(ab * ab, axis=-1)
    lok = ll > 1e-20
    t = jnp.clip(jnp.sum((p - a) * ab, axis=-1) * jnp.where(lok, 1.0 / jnp.where(lok, ll, 1.0), 0.0), 0.0, 1.0)
    q = a + t[..., None] * ab - p
    d2 = jnp.min(jnp.sum(q * q, axis=-1), axis=1)
    dok = d2 > 1e-20
    d = jnp.where(dok, jnp.sqrt(jnp.where(dok, d2, 1.0)), 0.0)
    soft = jax.nn.sigmoid(-d / sigma)
    return jnp.where(covered, 1.0, jnp.where(valid, soft, 0.0))


def render(
    vertices_cam,
    faces,
    focal,
    principal,
    face_id,
    pixels,
    *,
    vertex_colors=None,
    uvs=None,
    uv_faces=None,
    texture=None,
    sh_coeffs=None,
    light_dir=None,
    ambient: float = 0.35,
    diffuse: float = 0.65,
    specular: float = 0.0,
    shininess: float = 32.0,
    edge_face_id=None,
    config: RenderConfig = RenderConfig(),
):
    """Differentiable colours of ``P`` pixels of a camera-frame mesh with fixed visibility.

    Colour = albedo x shading (+ ``specular`` x Blinn-Phong with ``light_dir``), clipped to [0, 1],
    composited over ``config.background``.  Albedo: the
    bilinear ``texture`` at the interpolated UV if given, else the interpolated ``vertex_colors``,
    else 0.8 grey.  Shading: ``sh_shading(n, sh_coeffs)`` if given, else the numpy renderer's
    ``ambient + diffuse * max(0, n.l)`` with ``l = light_dir`` (default
    :data:`digitaltwin_jax.render.renderer.DEFAULT_LIGHT_DIR`); ``n`` the interpolated area-weighted
    vertex normal (:func:`digitaltwin_jax.geometry.mesh.vertex_normals`), normalised.

    Args:
      vertices_cam: ``(V, 3) float32`` camera frame (mm), z > 0.
      faces: ``(F, 3) int``.
      focal: scalar pixels; principal: ``(2,)`` (the K of :mod:`digitaltwin_jax.camera`).
      face_id: ``(P,) int32`` from :func:`face_ids` at the same geometry (held fixed).
      pixels: ``(P, 2) float32`` pixel centres (:func:`pixel_grid` for a whole image).
      vertex_colors: ``(V, 3)``; uvs ``(T, 2)``, uv_faces ``(F, 3)``, texture ``(Ht, Wt, 3)``.
      sh_coeffs: ``(9, 3)`` SH lighting (see module docstring).
      ambient, diffuse: the Lambert model's weights (without ``sh_coeffs``).
      specular, shininess: weight and exponent of the Blinn-Phong highlight (0: none).
      edge_face_id: ``(P,) int32`` from :func:`nearest_face_ids_np`, needed when
        ``config.soft_sigma > 0``.
      config: :class:`RenderConfig`.

    Returns:
      ``(colors (P, 3), coverage (P,))`` float32.
    """
    v = jnp.asarray(vertices_cam)
    faces = np.asarray(faces)
    pts = screen_points(v, focal, principal)
    covered = jnp.asarray(face_id) >= 0
    soft = config.soft_sigma > 0
    if soft:
        if edge_face_id is None:
            raise ValueError("soft_sigma > 0 needs edge_face_id (nearest_face_ids_np)")
        # empty pixels near the silhouette take the colour of the nearest point of their candidate face
        face_id = jnp.where(covered, face_id, jnp.asarray(edge_face_id))
    bary = barycentrics(pts, faces, face_id, pixels)
    n = safe_unit(interpolate(bary, face_id, vertex_normals(v, faces), faces))
    p = interpolate(bary, face_id, v, faces)
    if config.two_sided:
        n = n * jnp.where(jnp.sum(n * p, axis=-1, keepdims=True) > 0, -1.0, 1.0)  # view = -p
    if texture is not None:
        uvf = faces if uv_faces is None else np.asarray(uv_faces)
        albedo = sample_texture(texture, interpolate(bary, face_id, uvs, uvf))[:, :3]
    elif vertex_colors is not None:
        albedo = interpolate(bary, face_id, vertex_colors, faces)
    else:
        albedo = jnp.full((bary.shape[0], 3), 0.8, v.dtype)
    ld = DEFAULT_LIGHT_DIR if light_dir is None else light_dir
    if sh_coeffs is not None:
        shade = sh_shading(n, sh_coeffs)
    else:
        shade = (ambient + diffuse * lambert(n, ld))[:, None]
    color = albedo * shade
    if specular > 0:
        color = color + specular * blinn_phong(n, ld, safe_unit(-p), shininess)[:, None]
    color = jnp.where((jnp.asarray(face_id) >= 0)[:, None], jnp.clip(color, 0.0, 1.0), 0.0)
    if soft:
        cov = soft_coverage(pts, faces, edge_face_id, pixels, config.soft_sigma, covered)
    else:
        cov = covered.astype(v.dtype)
    bg = jnp.asarray(config.background, v.dtype)
    return color * cov[:, None] + (1.0 - cov[:, None]) * bg, cov
