"""Landmark term E_l (paper eq. 1) and the sliding jaw contour (paper section 3.4, ref. [7]).

E_l = sum_i || (100 / W_eye) * (K(T(S(P_F, m_i), (q, t)), f_s) - L_i) ||^2

* ``S(P_F, m_i)`` samples landmark i as a barycentric combination of (up to) three vertices of the
  deformed mesh: ``sample_indices (68, 3) int32`` and ``sample_weights (68, 3) float`` (a vertex is
  ``(i, i, i), (1, 0, 0)``; a point on edge (a, b) is ``(a, b, a), (w, 1 - w, 0)``).
* ``K`` and ``T`` are the OpenCV camera of :mod:`digitaltwin_jax.camera`:
  ``p_cam = R(q) p + t`` (q normalised inside), ``u = f_s f x / z + c_x``, ``v = f_s f y / z + c_y``,
  ``f = max(h, w)``, ``c = (w / 2, h / 2)`` (the paper's text swaps h and w for c; this is the
  correct assignment).
* ``W_eye`` is the image distance of the outer eye corners (iBUG 36 and 45).  The paper writes
  100 / W_eye outside the square; we scale the residual itself, so the term measures errors in
  "percent of the eye distance" and its balance against the priors does not depend on the image
  resolution (with the paper's form, doubling the resolution doubles E_l).
* Missing landmarks (NaN, or ``mask == 0``) give zero residual rows: masked, never propagated.
* Jaw landmarks may measure their error in the frame of the detected outline, with the
  along-the-outline part down-weighted (:func:`contour_frames`; our addition for sliding points).

Sliding contour.  The 17 jaw landmarks of a detector lie on the visible face outline, which moves
over the surface with the head pose.  :func:`contour_lines` precomputes, once per topology, one
*line* of candidate surface points per jaw landmark: the intersection of the neutral mesh with the
horizontal plane (head frame, y = const) through the landmark, from the model's extended jawline
(``model.contour_candidates``, the frontal outline) inward across the cheek.  At every iteration
:func:`select_contour` picks, on each line, the point that lies outermost in the image along the
projected head x axis on that side (right side = iBUG 0-7: most negative head x; left = 9-16) - the
silhouette point of that horizontal section for the current pose.  Lines are ordered by height, so
the order of the jaw landmarks is kept.  Point 8 (chin) stays at ``model.landmark_indices[8]``.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import project_pinhole, transform
from digitaltwin_jax.geometry.mesh import unique_edges
from digitaltwin_jax.geometry.rotations import quaternion_to_matrix

__all__ = [
    "NUM_LANDMARKS",
    "JAW",
    "CHIN",
    "RIGHT_EYE_OUTER",
    "LEFT_EYE_OUTER",
    "ContourLines",
    "contour_lines",
    "select_contour",
    "fixed_samples",
    "sample_points",
    "project_points",
    "eye_distance",
    "contour_frames",
    "landmark_residual",
    "landmark_points",
    "landmark_pixels",
    "LandmarkTerm",
    "slide_contour",
]

NUM_LANDMARKS = 68
JAW = tuple(range(17))
CHIN = 8
RIGHT_EYE_OUTER = 36
LEFT_EYE_OUTER = 45


@functools.partial(jax.tree_util.register_dataclass, data_fields=["indices", "weights"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class ContourLines:
    """Candidate points for the 17 jaw landmarks (one ordered line per landmark).

    Attributes:
      indices: ``(17, K, 3) int32`` vertex indices of each candidate point (barycentric form).
      weights: ``(17, K, 3) float32`` barycentric weights (rows sum to 1).  Line ``j`` serves iBUG
        landmark ``j``; candidates run from the frontal outline inward, padded by repeating the
        last one.  Line 8 (chin) holds the chin vertex only.
    """

    indices: np.ndarray
    weights: np.ndarray


def fixed_samples(landmark_indices) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric form ``((68, 3) int32, (68, 3) float32)`` of vertex landmarks ``(68,)``."""
    li = np.asarray(landmark_indices, dtype=np.int32)
    if li.shape != (NUM_LANDMARKS,):
        raise ValueError(f"landmark_indices must have shape (68,), got {li.shape}")
    w = np.zeros((NUM_LANDMARKS, 3), np.float32)
    w[:, 0] = 1.0
    return np.repeat(li[:, None], 3, axis=1), w


def contour_lines(
    vertices,
    faces,
    landmark_indices,
    contour_candidates,
    surface_mask=None,
    *,
    max_points: int = 16,
    inner_fraction: float = 0.25,
) -> ContourLines:
    """Precompute the sliding-contour candidate lines of a topology (numpy, once per model).

    Args:
      vertices: ``(V, 3)`` neutral mesh, head frame (x to the subject's left, y up, z out of the face).
      faces: ``(F, 3) int``.
      landmark_indices: ``(68,) int`` iBUG landmark vertices (their heights define the lines).
      contour_candidates: ``(right, left)`` vertex index sequences of the extended jawlines (the
        frontal outline), right = the side of iBUG 0-7 (negative x).  Any order along the jaw.
      surface_mask: optional ``(V,) bool``; only edges with both ends on it are used (e.g. the
        model's ``outer_surface_mask``, which excludes inner lips and nostrils).
      max_points: K, candidates per line (evenly subsampled from the outside inward).
      inner_fraction: lines stop at ``inner_fraction * |x_outline|`` from the mid-sagittal plane.

    Returns:
      :class:`ContourLines` with ``(17, K, 3)`` indices and weights.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    li = np.asarray(landmark_indices, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if li.shape != (NUM_LANDMARKS,):
        raise ValueError(f"landmark_indices must have shape (68,), got {li.shape}")
    if len(contour_candidates) != 2 or min(len(c) for c in contour_candidates) < 2:
        raise ValueError("contour_candidates must be (right, left) sequences of >= 2 vertex indices")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    edges = unique_edges(f)
    if surface_mask is not None:
        m = np.asarray(surface_mask, dtype=bool)
        edges = edges[m[edges[:, 0]] & m[edges[:, 1]]]
    ya, yb = v[edges[:, 0], 1], v[edges[:, 1], 1]

    idx = np.zeros((17, max_points, 3), np.int32)
    wts = np.zeros((17, max_points, 3), np.float32)
    wts[..., 0] = 1.0
    idx[CHIN] = li[CHIN]
    for side, (sign, lms) in enumerate(((-1.0, range(0, 8)), (1.0, range(9, 17)))):
        poly = v[np.asarray(contour_candidates[side], dtype=np.int64)]
        order = np.argsort(poly[:, 1])
        py, px, pz = poly[order, 1], poly[order, 0], poly[order, 2]
        for j in lms:
            y0 = v[li[j], 1]
            x_out = float(np.interp(y0, py, px))
            z_out = float(np.interp(y0, py, pz))
            cross = (np.minimum(ya, yb) <= y0) & (np.maximum(ya, yb) >= y0) & (ya != yb)
            e = edges[cross]
            w_a = (yb[cross] - y0) / (yb[cross] - ya[cross])  # weight of endpoint a
            p = w_a[:, None] * v[e[:, 0]] + (1.0 - w_a[:, None]) * v[e[:, 1]]
            sx = sign * p[:, 0]
            keep = (sx <= sign * x_out + 2.0) & (sx >= inner_fraction * abs(x_out)) & (p[:, 2] >= z_out - 2.0)
            e, w_a, sx = e[keep], w_a[keep], sx[keep]
            if e.shape[0] == 0:  # degenerate topology: fall back to the fixed landmark vertex
                idx[j] = li[j]
                continue
            o = np.argsort(-sx, kind="stable")  # outermost first
            pick = np.unique(np.round(np.linspace(0, len(o) - 1, min(max_points, len(o)))).astype(int))
            sel = o[pick]
            n = len(sel)
            idx[j, :n, 0], idx[j, :n, 1], idx[j, :n, 2] = e[sel, 0], e[sel, 1], e[sel, 0]
            wts[j, :n] = np.stack([w_a[sel], 1.0 - w_a[sel], np.zeros(n)], axis=1)
            idx[j, n:] = idx[j, n - 1]
            wts[j, n:] = wts[j, n - 1]
    return ContourLines(indices=idx, weights=wts)


def sample_points(vertices, indices, weights):
    """Barycentric samples ``(..., 3)`` of ``vertices (V, 3)`` at ``indices/weights (..., 3)``."""
    v = jnp.asarray(vertices)
    return jnp.sum(v[jnp.asarray(indices)] * jnp.asarray(weights, v.dtype)[..., None], axis=-2)


def project_points(points, q, t, focal_scale, focal, principal_point):
    """Pixels ``(..., 2)`` of head-frame ``points (..., 3)`` (OpenCV camera, see module docstring).

    Args:
      points: ``(..., 3)`` head frame, mm.
      q: ``(4,)`` wxyz (normalised inside); t: ``(3,)`` mm; focal_scale: scalar f_s.
      focal: scalar f = max(h, w) in pixels; principal_point: ``(2,)`` (c_x, c_y) = (w / 2, h / 2).
    """
    return project_pinhole(transform(points, q, t), focal_scale * focal, principal_point)


def select_contour(line_points, q, t, focal_scale, focal, principal_point, previous=None, hysteresis_px=0.0):
    """Index of the silhouette candidate on each jaw line for the current pose (paper ref. [7]).

    Args:
      line_points: ``(17, K, 3)`` head-frame positions of the candidates of :class:`ContourLines`
        on the current (deformed) mesh.
      q, t, focal_scale, focal, principal_point: camera as in :func:`project_points`.
      previous: optional ``(17,) int`` the last selection; a line switches only when its new best
        candidate lies more than ``hysteresis_px`` further out than the previous one (this stops the
        selection from flip-flopping between two neighbours from one iteration to the next).
      hysteresis_px: see ``previous``.

    Returns:
      ``(17,) int32``: on lines 0-7 the candidate outermost in the image along the projected head
      -x axis, on lines 9-16 along +x (line 8 has one candidate).  Not differentiable (an argmax);
      the solver re-selects between iterations.
    """
    pts = jnp.asarray(line_points)
    px = project_points(pts, q, t, focal_scale, focal, principal_point)  # (17, K, 2)
    side = jnp.where(jnp.arange(17) < CHIN, -1.0, 1.0).astype(pts.dtype)
    ref = pts[:, 0, :]
    ax = jnp.zeros_like(ref).at[:, 0].set(10.0 * side)
    d = project_points(ref + ax, q, t, focal_scale, focal, principal_point) - px[:, 0, :]
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    score = jnp.sum(px * d[:, None, :], axis=-1)
    best = jnp.argmax(score, axis=1).astype(jnp.int32)
    if previous is None:
        return best
    prev = jnp.asarray(previous, jnp.int32)
    gain = jnp.take_along_axis(score, best[:, None], 1)[:, 0] - jnp.take_along_axis(score, prev[:, None], 1)[:, 0]
    return jnp.where(gain > hysteresis_px, best, prev).astype(jnp.int32)


def eye_distance(landmarks_2d) -> float:
    """W_eye: pixel distance of the outer eye corners (iBUG 36, 45) of ``landmarks_2d (68, 2)``.

    Returns NaN when either corner is missing (the caller then falls back to the projected model).
    """
    lm = np.asarray(landmarks_2d, dtype=np.float64)
    return float(np.linalg.norm(lm[RIGHT_EYE_OUTER] - lm[LEFT_EYE_OUTER]))


def contour_frames(landmarks_2d, tangent_weight: float) -> np.ndarray:
    """Per-landmark ``(68, 2, 2)`` residual metrics: identity, except on the sliding jaw points.

    A jaw landmark (iBUG 0-7, 9-16) marks *some* point of the face outline; where exactly along
    the outline is ill defined (detectors disagree, and on a flat stretch of the silhouette the
    outermost point jumps).  Its residual is therefore expressed in the outline's frame, estimated
    from the neighbouring detected jaw points: ``[n . d, tangent_weight * (t . d)]`` with t the unit
    tangent and n the normal.  ``tangent_weight = 1`` gives the plain 2D residual (the frame is a
    rotation).  Jaw points whose neighbours are missing keep the identity.

    Args:
      landmarks_2d: ``(68, 2)`` pixels (NaN = missing).
      tangent_weight: weight of the along-the-outline component, in [0, 1].
    """
    lm = np.asarray(landmarks_2d, np.float64)
    frames = np.repeat(np.eye(2)[None], NUM_LANDMARKS, axis=0)
    for j in JAW:
        if j == CHIN:
            continue
        a, b = lm[max(j - 1, 0)], lm[min(j + 1, 16)]
        d = b - a
        if not (np.all(np.isfinite(d)) and np.isfinite(lm[j]).all()) or np.linalg.norm(d) < 1e-6:
            continue
        t = d / np.linalg.norm(d)
        frames[j] = np.stack([np.array([-t[1], t[0]]), tangent_weight * t])
    return frames


def landmark_residual(points, landmarks_2d, mask, scale, q, t, focal_scale, focal, principal_point, frames=None):
    """Residual of eq. 1: ``(136,)`` = ``sqrt(mask) * scale * frames @ (project(points) - landmarks_2d)``.

    Args:
      points: ``(68, 3)`` head-frame landmark positions on the deformed mesh (see :func:`sample_points`).
      landmarks_2d: ``(68, 2)`` detected pixels; entries of masked landmarks are ignored (may be NaN).
      mask: ``(68,)`` non-negative weights (0 = missing; jaw landmarks may get a lower weight).
      scale: scalar 100 / W_eye.
      q, t, focal_scale, focal, principal_point: camera, see :func:`project_points`.
      frames: optional ``(68, 2, 2)`` residual metrics (see :func:`contour_frames`); identity if None.
    """
    mask = jnp.asarray(mask)
    obs = jnp.where(mask[:, None] > 0, jnp.nan_to_num(jnp.asarray(landmarks_2d)), 0.0)
    d = project_points(points, q, t, focal_scale, focal, principal_point) - obs
    if frames is not None:
        d = jnp.einsum("nij,nj->ni", jnp.asarray(frames, d.dtype), d)
    r = d * (scale * jnp.sqrt(mask))[:, None]
    return jnp.where(mask[:, None] > 0, r, 0.0).reshape(-1)


# ------------------------------------------------------------------ the structured landmark term
#
# The fitting's unknowns and data are pytrees defined in :mod:`digitaltwin_jax.fitting.variables`;
# this layer does not import them (fitting sits above energies).  The term reads them by attribute:
#   variables ``v``: beta (M,), alpha (K,), t (3,), q (4,), f_s (), offsets (68, 3);
#   data: landmarks (68, 2), mask (68,), frames (68, 2, 2), scale (), focal (), principal (2,),
#     sample_idx / sample_w (68, 3) handle-local samples, base_h (H, 3), identity_h (K, H, 3),
#     expression_h (M, H, 3), lines_idx / lines_w (17, C, 3), contour (17,) int32
# (meanings as :class:`digitaltwin_jax.fitting.FitData`).  Gradients are returned as ``v``'s own type.

GLOBAL_LEAVES = ("beta", "alpha", "t", "q", "f_s")


def landmark_points(v, data):
    """``(68, 3)`` head-frame positions of the current landmark samples on the deformed mesh."""
    idx, w = data.sample_idx, data.sample_w
    p = sample_points(data.base_h, idx, w) + v.offsets
    if data.identity_h.shape[0]:  # sample the bases first: (K, 68, 3), cheap under jacfwd
        p = p + jnp.tensordot(v.alpha, jnp.sum(data.identity_h[:, idx] * w[..., None], axis=2), axes=1)
    if data.expression_h.shape[0]:
        p = p + jnp.tensordot(v.beta, jnp.sum(data.expression_h[:, idx] * w[..., None], axis=2), axes=1)
    return p


def landmark_pixels(v, data):
    """``(68, 2)`` projected pixels of the current landmark samples."""
    return project_points(landmark_points(v, data), v.q, v.t, v.f_s, data.focal, data.principal)


def _sampled_basis(basis_h, data):
    # (B, H, 3) -> (B, 68, 3): the basis at the current landmark samples
    return jnp.sum(basis_h[:, data.sample_idx] * data.sample_w[..., None], axis=2)


@dataclasses.dataclass(frozen=True)
class LandmarkTerm:
    """E_l (eq. 1): ``(136,)`` residual in percent of the eye distance.

    Also supplies its Gauss-Newton block in closed structure (``normal_equations``): each landmark
    residual depends on its own 3 offsets only, so ``J^T J`` is dense in the ~160 global unknowns
    and block-diagonal in the 204 offsets (checked against ``jax.jacfwd`` in the tests).

    Attributes:
      sliding: re-choose the 17 jaw samples on the silhouette before every iteration
        (:meth:`relinearize`, :func:`slide_contour`).
      hysteresis: the sliding's hysteresis in percent of the eye distance.
      unknowns: the fit's variables this term brings into the problem (the pose, focal scale,
        expression and identity; the fitting's configuration may still fix some).
    """

    sliding: bool = True
    hysteresis: float = 0.0
    unknowns = GLOBAL_LEAVES

    def __call__(self, v, data):
        return landmark_residual(
            landmark_points(v, data), data.landmarks, data.mask, data.scale, v.q, v.t, v.f_s, data.focal, data.principal,
            data.frames,
        )

    def normal_equations(self, v, data):
        pts = landmark_points(v, data)
        # closed-form projection Jacobians: u = s f_s f x / z + c with (x, y, z) = R(q) p + t
        # (the projection is re-derived here, deliberately: its intermediates give the Jacobians)
        R = quaternion_to_matrix(v.q)
        dR = jax.jacfwd(quaternion_to_matrix)(v.q)  # (3, 3, 4), once (not per landmark)
        pc = pts @ R.T + v.t
        iz = 1.0 / pc[:, 2]
        fs_f = v.f_s * data.focal
        px = fs_f * pc[:, :2] * iz[:, None] + data.principal
        valid = data.mask > 0
        obs = jnp.where(valid[:, None], data.landmarks, 0.0)
        wgt = jnp.where(valid, data.scale * jnp.sqrt(data.mask), 0.0)
        fw = data.frames * wgt[:, None, None]  # (n, 2, 2): residual metric times weight
        r = jnp.einsum("nij,nj->ni", fw, px - obs)  # (n, 2)
        zero = jnp.zeros_like(iz)
        dpx_dpc = fs_f * jnp.stack(
            [jnp.stack([iz, zero, -pc[:, 0] * iz * iz], -1), jnp.stack([zero, iz, -pc[:, 1] * iz * iz], -1)], 1
        )  # (n, 2, 3)
        jt = jnp.einsum("nij,njk->nik", fw, dpx_dpc)  # d r / d t = d r / d p_cam
        jp = jt @ R  # d r / d p (head frame)
        jq = jnp.einsum("nik,kjq,nj->niq", jt, dR, pts)  # d r / d q
        jf = jnp.einsum("nij,nj->ni", fw, data.focal * pc[:, :2] * iz[:, None])[..., None]  # d r / d f_s
        jc = jnp.concatenate([jt, jq, jf], axis=-1)  # (n, 2, 8): t, q, f_s
        blocks = [jnp.einsum("nrd,mnd->nrm", jp, _sampled_basis(data.expression_h, data))]
        blocks.append(jnp.einsum("nrd,knd->nrk", jp, _sampled_basis(data.identity_h, data)))
        blocks.append(jc)
        jg = jnp.concatenate(blocks, axis=-1)  # (68, 2, G): beta, alpha, t, q, f_s
        n_g = jg.shape[-1]
        jg2 = jg.reshape(-1, n_g)
        rr = r.reshape(-1)
        gg = jg2.T @ rr
        m, k = data.expression_h.shape[0], data.identity_h.shape[0]
        grad = dataclasses.replace(
            v, beta=gg[:m], alpha=gg[m : m + k], t=gg[m + k : m + k + 3], q=gg[m + k + 3 : m + k + 7],
            f_s=gg[m + k + 7], offsets=jnp.einsum("nrd,nr->nd", jp, r),
        )
        n = pts.shape[0]
        h_go = jnp.einsum("nrg,nrd->gnd", jg, jp).reshape(n_g, 3 * n)
        h_oo = jnp.einsum("nrd,nre,nm->ndme", jp, jp, jnp.eye(n, dtype=jp.dtype)).reshape(3 * n, 3 * n)
        return jnp.sum(rr * rr), grad, [
            (GLOBAL_LEAVES, GLOBAL_LEAVES, jg2.T @ jg2),
            (GLOBAL_LEAVES, ("offsets",), h_go),
            (("offsets",), ("offsets",), h_oo),
        ]


    def relinearize(self, v, data, it):
        """Re-linearisation hook (second phase): slide the jaw samples onto the silhouette of the
        current shape, corrective field ``data.delta_h`` included.  Returns ``(v, data)``."""
        if not self.sliding:
            return v, data
        idx, w, sel = slide_contour(v, data, data.delta_h, it, self.hysteresis)
        return v, dataclasses.replace(data, sample_idx=idx, sample_w=w, contour=sel)


def slide_contour(v, data, delta_h, it, hysteresis: float = 0.0):
    """The sliding contour's re-linearisation: re-choose the 17 jaw samples on the silhouette.

    Args:
      v, data: as :class:`LandmarkTerm`; delta_h: ``(H, 3)`` the corrective field at the handles.
      it: the iteration (the first one chooses freely); hysteresis: in percent of the eye distance
        (``FitConfig.contour_hysteresis``).

    Returns:
      ``(sample_idx (68, 3), sample_w (68, 3), contour (17,) int32)`` the new samples and choices.
    """
    shape_h = data.base_h + jnp.tensordot(v.alpha, data.identity_h, axes=1) + jnp.tensordot(v.beta, data.expression_h, axes=1) + delta_h
    pts = sample_points(shape_h, data.lines_idx, data.lines_w)
    hyst = jnp.where(it == 0, -jnp.inf, hysteresis / data.scale)  # free choice in the first iteration
    sel = select_contour(pts, v.q, v.t, v.f_s, data.focal, data.principal, data.contour, hyst)
    jaw = jnp.arange(17)
    idx = data.sample_idx.at[:17].set(data.lines_idx[jaw, sel])
    w = data.sample_w.at[:17].set(data.lines_w[jaw, sel])
    return idx, w, sel
