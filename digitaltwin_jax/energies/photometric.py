"""Photometric energy term (analysis by synthesis; Blanz & Vetter 1999, Deep3DFaceRecon, DECA):
render the fitted head with an albedo and second-order SH lighting and compare it with the photo's
pixels, at sampled skin pixels, through a robust (Cauchy) loss.

  E_ph = (1 / P) sum_p w_p sum_c rho_c( a_c(x_p) * (Y(n(x_p)) . L_c) - I_c(p) ),
  rho_c(r) = c^2 log(1 + r^2 / c^2)

* ``x_p`` is the surface point seen through the centre of sample pixel ``p``: its triangle comes
  from the z-buffer (:func:`digitaltwin_jax.render.jax_render.face_ids`) and is held fixed inside a
  Gauss-Newton step; its barycentrics, normal and albedo are differentiable functions of the
  geometry (:mod:`digitaltwin_jax.render.jax_render`).
* Unknowns: the per-vertex albedo ``a (V, 3)`` (ridge-regularised toward its mean colour) and the
  SH lighting ``L (9, 3)`` are *eliminated*: before every iteration the term's hook solves them in
  closed form at the current geometry (alternating least squares, iteratively reweighted for the
  Cauchy loss; conjugate gradients for the albedo), like the corrective term eliminates deltaP.  The
  geometry unknowns the term brings (``unknowns``, default pose, focal and expression; add
  ``"alpha"`` for identity) are moved by the fit's solver through the residual's Jacobian.
* Colours are linear light: the photo is decoded from sRGB (:func:`photometric_inputs`).
* Sample pixels are chosen by the caller (a skin mask: :func:`digitaltwin_jax.texture.skin_mask.skin_mask`);
  pixels whose visible triangle is empty, outside the face, an eye or the mouth get weight 0.

Layering: this module defines the residual object and its inputs; the user wraps them in a
:class:`digitaltwin_jax.fitting.Term` (see ``experiments/photometric_term.py``)::

    fn, data, consts = photometric_inputs(model, image, mask)    # pose, focal, expression
    terms = F.default_terms(cfg) + (F.Term(fn.name, fn, 1e7, data=data, constants=consts),)

With ``FitConfig(fit_identity=True)`` pass ``num_identity=cfg.num_identity`` and
``unknowns=GEOMETRY_UNKNOWNS + ("alpha",)`` so that the term moves the identity too (the measured
gain in ``docs/packages/render.md`` comes from that).

The term's name must be ``fn.name`` (its hook finds its own data by that name).  The final albedo
and lighting are not part of :class:`~digitaltwin_jax.fitting.FitResult`; :func:`solve_albedo_lighting`
recomputes them at the fitted mesh.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import transform
from digitaltwin_jax.geometry.mesh import vertex_normals
from digitaltwin_jax.render import jax_render as jr
from digitaltwin_jax.render.colorspace import srgb_to_linear

__all__ = [
    "GEOMETRY_UNKNOWNS", "PhotometricConfig", "PhotometricData", "PhotometricConstants", "PhotometricResidual",
    "photometric_inputs", "photometric_constants", "residual_function", "solve_albedo_lighting", "robust_residual", "shade_samples", "sample_pixels",
]

GEOMETRY_UNKNOWNS = ("beta", "t", "q", "f_s")  # the FitVariables leaves the term moves by default


@dataclasses.dataclass(frozen=True)
class PhotometricConfig:
    """Settings of the photometric term.

    Attributes:
      num_samples: P, skin pixels sampled from the mask (fixed count: one compiled solve per count).
      robust_scale: c of the Cauchy loss, linear colour units.
      albedo_ridge: weight pulling each vertex albedo toward the mean colour, relative to a vertex's
        typical data weight (0: free per-vertex albedo; large: one colour for the face).
      light_ridge: Tikhonov weight on the SH coefficients beyond band 0 (relative to the data).
      alternations: lighting / albedo alternations per solve (each one IRLS reweighting).
      cg_iterations: conjugate-gradient iterations of each albedo solve.
    """

    num_samples: int = 2048
    robust_scale: float = 0.05
    albedo_ridge: float = 1.0
    light_ridge: float = 1e-3
    alternations: int = 3
    cg_iterations: int = 30


def _pytree(cls):
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_dataclass(cls, data_fields=[f.name for f in dataclasses.fields(cls)], meta_fields=[])


@_pytree
class PhotometricData:
    """Per-face inputs and state (``Term.data``; a leading batch axis in ``fit_batch``).

    pixels ``(P, 2)`` sample pixel centres; colors ``(P, 3)`` linear photo colours; weights ``(P,)``
    (0 = padding); base ``(V, 3)`` the neutral shape P of this face (head frame, mm).
    State, updated by the hook before every iteration: face_id ``(P,) int32`` the visible triangle;
    albedo ``(V, 3)``; sh ``(9, 3)`` the lighting.
    """

    pixels: Any
    colors: Any
    weights: Any
    base: Any
    face_id: Any
    albedo: Any
    sh: Any


@_pytree
class PhotometricConstants:
    """Shared inputs (``Term.constants``): identity ``(K, V, 3)`` (K = the fit's identity modes),
    expression ``(M, V, 3)`` bases, face_ok ``(F,)`` float 1 for faces whose pixels count (skin of
    the face: no eyes, no mouth interior, no back of the head)."""

    identity: Any
    expression: Any
    face_ok: Any


def robust_residual(r, scale: float):
    """Square-root Cauchy residual ``sign(r) c sqrt(log(1 + r^2 / c^2))`` ``(...)``: its square is the
    Cauchy loss; ~``r`` for ``|r| << c``.  NaN-free at ``r = 0`` in value and gradient (double where)."""
    x = (r / scale) ** 2
    small = x < 1e-6
    xs = jnp.where(small, 1.0, x)
    g = jnp.where(small, 1.0 - 0.5 * x, jnp.log1p(xs) / xs)  # log(1 + x) / x
    return r * jnp.sqrt(g)


def _irls_weight(r, scale: float):
    """Cauchy IRLS weight ``1 / (1 + r^2 / c^2)``."""
    return 1.0 / (1.0 + (r / scale) ** 2)


def shade_samples(vertices_cam, faces, focal, principal, face_id, pixels):
    """Geometry of the sample pixels: ``(bary (P, 3), corners (P, 3) int, sh_basis (P, 9))``.

    vertices_cam ``(V, 3)``; face_id ``(P,)`` fixed triangles; pixels ``(P, 2)``.  Normals are the
    interpolated area-weighted vertex normals (:func:`digitaltwin_jax.geometry.mesh.vertex_normals`),
    unit length, turned toward the camera."""
    pts = jr.screen_points(vertices_cam, focal, principal)
    bary = jr.barycentrics(pts, faces, face_id, pixels, clip=False)
    corners = jnp.asarray(faces)[jnp.where(face_id >= 0, face_id, 0)]
    n = jr.interpolate(bary, face_id, vertex_normals(vertices_cam, faces), faces)
    n = jr.safe_unit(n)
    p = jr.interpolate(bary, face_id, vertices_cam, faces)
    n = n * jnp.where(jnp.sum(n * p, axis=-1, keepdims=True) > 0, -1.0, 1.0)
    return bary, corners, jr.sh_basis(n)


def _albedo_at(bary, corners, albedo):
    return jnp.einsum("pk,pkc->pc", bary, albedo[corners])


def solve_albedo_lighting(bary, corners, basis, colors, weights, num_vertices: int,
                          config: PhotometricConfig = PhotometricConfig(), albedo0=None, sh0=None):
    """Albedo and SH lighting that best explain ``colors`` at fixed geometry (closed form, ALS).

    Minimises ``sum_p w_p rho(a(x_p) * (Y_p . L) - I_p) + lambda sum_v |a_v - mean a|^2
    + mu |L_{1..8}|^2`` per channel, alternating an exact 9 x 9 solve for the lighting and a
    Jacobi-preconditioned CG solve for the per-vertex albedo, with Cauchy IRLS weights updated
    before every alternation.

    Args:
      bary, corners: ``(P, 3)`` barycentrics and vertex ids of the samples' triangles.
      basis: ``(P, 9)`` SH basis at the samples' normals.  colors ``(P, 3)``; weights ``(P,)``.
      num_vertices: V.
      albedo0, sh0: optional ``(V, 3)``, ``(9, 3)`` start (default: mean colour, white ambient).

    Returns:
      ``(albedo (V, 3), sh (9, 3))``.
    """
    dtype = colors.dtype
    wsum = jnp.maximum(jnp.sum(weights), 1e-12)
    mean_col = jnp.sum(weights[:, None] * colors, axis=0) / wsum
    if sh0 is None:
        sh0 = jr.sh_ambient(1.0, 3).astype(dtype)
    if albedo0 is None:
        albedo0 = jnp.broadcast_to(mean_col, (num_vertices, 3)).astype(dtype)
    flat = corners.reshape(-1)

    def b_apply(a):  # (V, 3) -> (P, 3)
        return _albedo_at(bary, corners, a)

    def bt_apply(x):  # (P, 3) -> (V, 3)
        return jnp.zeros((num_vertices, 3), dtype).at[flat].add((bary[..., None] * x[:, None, :]).reshape(-1, 3))

    def light_solve(albedo, w):
        a_p = b_apply(albedo)  # (P, 3)
        X = a_p.T[:, :, None] * basis[None]  # (3, P, 9)
        A = jnp.einsum("cpi,p,cpj->cij", X, w, X)
        rhs = jnp.einsum("cpi,p,pc->ci", X, w, colors)
        tr = jnp.trace(A, axis1=1, axis2=2)[:, None, None] / 9.0
        reg = config.light_ridge * tr * jnp.diag(jnp.asarray([0.0] + [1.0] * 8, dtype))[None] + (1e-9 * tr + 1e-9) * jnp.eye(9, dtype=dtype)
        return jnp.linalg.solve(A + reg, rhs[..., None])[..., 0].T  # (9, 3)

    def albedo_solve(albedo, sh, w):
        s = basis @ sh  # (P, 3) shading
        ws2 = w[:, None] * s * s
        diag = jnp.zeros((num_vertices, 3), dtype).at[flat].add((bary[..., None] ** 2 * ws2[:, None, :]).reshape(-1, 3))
        seen = diag > 0
        lam = config.albedo_ridge * jnp.sum(diag, axis=0) / jnp.maximum(jnp.sum(seen, axis=0), 1) + 1e-9
        mu = jnp.sum(jnp.where(seen, albedo, 0.0), axis=0) / jnp.maximum(jnp.sum(seen, axis=0), 1)
        op = lambda a: bt_apply(ws2 * b_apply(a)) + lam * a  # noqa: E731
        rhs = bt_apply(w[:, None] * s * colors) + lam * mu
        m_inv = 1.0 / (diag + lam)
        x = albedo
        r = rhs - op(x)
        z = m_inv * r
        p = z
        rz = jnp.sum(r * z, axis=0)

        def body(_, c):
            x, r, p, rz = c
            ap = op(p)
            pap = jnp.sum(p * ap, axis=0)
            alpha = jnp.where(pap > 0, rz / jnp.where(pap > 0, pap, 1.0), 0.0)
            x = x + alpha * p
            r = r - alpha * ap
            z = m_inv * r
            rz_new = jnp.sum(r * z, axis=0)
            beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
            return x, r, z + beta * p, rz_new

        x, *_ = jax.lax.fori_loop(0, config.cg_iterations, body, (x, r, p, rz))
        return x

    def alternate(_, c):
        albedo, sh = c
        res = b_apply(albedo) * (basis @ sh) - colors
        w = weights * jnp.mean(_irls_weight(res, config.robust_scale), axis=1)
        sh = light_solve(albedo, w)
        albedo = albedo_solve(albedo, sh, w)
        return albedo, sh

    return jax.lax.fori_loop(0, config.alternations, alternate, (albedo0, sh0))


@dataclasses.dataclass(frozen=True, eq=False)
class PhotometricResidual:
    """The term's function ``fn(v, data, own) -> (3 P,)`` with its re-linearisation hook.

    Attributes:
      name: the :class:`~digitaltwin_jax.fitting.Term` name it must be used under.
      faces: ``(F, 3) int`` numpy.  image_size: ``(h, w)``.  config: :class:`PhotometricConfig`.
      unknowns: the :class:`~digitaltwin_jax.fitting.FitVariables` leaves it moves.
    """

    name: str
    faces: np.ndarray
    image_size: tuple[int, int]
    config: PhotometricConfig = PhotometricConfig()
    unknowns: tuple[str, ...] = GEOMETRY_UNKNOWNS

    def _camera_vertices(self, v, own_face, own_shared):
        verts = (own_face.base + jnp.tensordot(v.alpha, own_shared.identity, axes=1)
                 + jnp.tensordot(v.beta, own_shared.expression, axes=1))
        return transform(verts, v.q, v.t)

    def _weights(self, d, shared):
        fid = d.face_id
        ok = (fid >= 0) & (shared.face_ok[jnp.where(fid >= 0, fid, 0)] > 0)
        return jnp.where(ok, d.weights, 0.0)

    def __call__(self, v, data, own):
        d, c = own.face, own.shared
        cam = self._camera_vertices(v, d, c)
        bary, corners, basis = shade_samples(cam, self.faces, data.focal * v.f_s, data.principal, d.face_id, d.pixels)
        pred = _albedo_at(bary, corners, d.albedo) * (basis @ d.sh)
        w = self._weights(d, c)
        r = robust_residual(pred - d.colors, self.config.robust_scale)
        return (jnp.sqrt(w / self.config.num_samples)[:, None] * r).reshape(-1)

    def relinearize(self, v, data, it):
        """Before every iteration: the visible triangle of every sample (z-buffer, no gradient), then
        the albedo and lighting at the current geometry."""
        d = data.term_data[self.name]
        c = data.term_constants[self.name]
        v_ = jax.lax.stop_gradient(v)
        cam = self._camera_vertices(v_, d, c)
        focal = data.focal * v_.f_s
        h, w = self.image_size
        fid = jr.face_ids(jr.screen_points(cam, focal, data.principal), self.faces, h, w, d.pixels)
        d = dataclasses.replace(d, face_id=fid)
        wts = self._weights(d, c)
        bary, corners, basis = shade_samples(cam, self.faces, focal, data.principal, fid, d.pixels)
        first = it == 0
        albedo0 = jnp.where(first, jnp.sum(wts[:, None] * d.colors, 0) / jnp.maximum(jnp.sum(wts), 1e-12), d.albedo)
        sh0 = jnp.where(first, jr.sh_ambient(1.0, 3).astype(d.sh.dtype), d.sh)
        albedo, sh = solve_albedo_lighting(bary, corners, basis, d.colors, wts, d.albedo.shape[0], self.config,
                                           jnp.broadcast_to(albedo0, d.albedo.shape), sh0)
        d = dataclasses.replace(d, albedo=albedo, sh=sh)
        return v, dataclasses.replace(data, term_data={**data.term_data, self.name: d})


def sample_pixels(mask, num_samples: int, rng: np.random.Generator):
    """``(pixels (P, 2) float64, weights (P,))``: ``num_samples`` distinct pixel centres drawn
    uniformly from ``mask (H, W) bool`` (all of them, zero-weight padded, when fewer)."""
    rows, cols = np.nonzero(np.asarray(mask, bool))
    n = rows.size
    pick = rng.choice(n, size=min(num_samples, n), replace=False) if n else np.zeros(0, np.int64)
    pix = np.zeros((num_samples, 2))
    wts = np.zeros(num_samples)
    pix[: pick.size] = np.stack([cols[pick] + 0.5, rows[pick] + 0.5], axis=1)
    wts[: pick.size] = 1.0
    return pix, wts


def photometric_inputs(model, image, mask, *, num_identity: int = 0, shape=None, name: str = "photometric",
                       config: PhotometricConfig = PhotometricConfig(), unknowns=GEOMETRY_UNKNOWNS,
                       rng: np.random.Generator | None = None):
    """The photometric term's function and inputs for one photo.

    Args:
      model: the :class:`~digitaltwin_jax.model.HeadModel` being fitted.
      image: ``(H, W, 3)`` uint8 or float sRGB in [0, 1] photo.
      mask: ``(H, W) bool`` the pixels that may be sampled (skin).
      num_identity: K, the identity modes the fit solves (``FitConfig.num_identity`` when
        ``fit_identity``, else 0): must match ``FitVariables.alpha``.
      shape: optional ``(V, 3)`` neutral shape given to the fit (default the model's mean).
      name: the term's name.  config: :class:`PhotometricConfig`.
      unknowns: the geometry leaves the term moves (add ``"alpha"`` with ``fit_identity``).
      rng: the sampling generator (default ``np.random.default_rng(0)``).

    Returns:
      ``(fn, data, constants)``: a :class:`PhotometricResidual`, this face's
      :class:`PhotometricData` (numpy float32) and the :class:`PhotometricConstants`
      (share them across faces of one model: ``fit_batch`` takes one ``constants``).
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    if np.shape(mask) != (h, w):
        raise ValueError(f"mask must be ({h}, {w}), got {np.shape(mask)}")
    rng = np.random.default_rng(0) if rng is None else rng
    pix, wts = sample_pixels(mask, config.num_samples, rng)
    lin = srgb_to_linear(img[..., :3])
    cols = lin[np.minimum(pix[:, 1].astype(int), h - 1), np.minimum(pix[:, 0].astype(int), w - 1)]
    base = np.asarray(model.vertices if shape is None else shape, np.float32)
    nv = model.num_vertices
    data = PhotometricData(
        pixels=pix.astype(np.float32), colors=cols.astype(np.float32), weights=wts.astype(np.float32), base=base,
        face_id=np.full(config.num_samples, -1, np.int32), albedo=np.full((nv, 3), 0.5, np.float32),
        sh=np.zeros((9, 3), np.float32),
    )
    fn = residual_function(model.faces, (h, w), name=name, config=config, unknowns=unknowns)
    return fn, data, photometric_constants(model, num_identity)


_FUNCTIONS: dict = {}


def residual_function(faces, image_size, *, name: str = "photometric", config: PhotometricConfig = PhotometricConfig(),
                      unknowns=GEOMETRY_UNKNOWNS) -> PhotometricResidual:
    """The :class:`PhotometricResidual` for a topology and image size, one object per distinct
    settings (memoised): photos of one size reuse the fit's compiled solve."""
    f = np.ascontiguousarray(faces, np.int32)
    key = (hashlib.sha1(f.tobytes()).hexdigest(), f.shape, tuple(int(x) for x in image_size), name, config, tuple(unknowns))
    fn = _FUNCTIONS.get(key)
    if fn is None:
        if len(_FUNCTIONS) >= 32:
            _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
        fn = _FUNCTIONS[key] = PhotometricResidual(name, f, key[2], config, tuple(unknowns))
    return fn


def photometric_constants(model, num_identity: int = 0) -> PhotometricConstants:
    """The shared :class:`PhotometricConstants` of ``model`` for a fit with ``num_identity`` modes."""
    faces = np.asarray(model.faces)
    skin = np.asarray(model.face_mask, bool) & ~np.asarray(model.eye_mask, bool) & np.asarray(model.outer_surface_mask, bool)
    face_ok = skin[faces].all(axis=1).astype(np.float32)
    return PhotometricConstants(
        identity=np.asarray(model.identity_basis[:num_identity], np.float32),
        expression=np.asarray(model.expression_basis, np.float32),
        face_ok=face_ok,
    )
