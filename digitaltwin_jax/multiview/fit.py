"""Multi-view fit: one head shape shared by several photos of one person (issue 16; paper eq. 1-4
summed over the views).

Model of view ``v`` (the paper's, section 3.4, with the identity shared):

    P_v = P + sum_k alpha_k I_k + deltaP + sum_i beta_{v,i} B_i,   p_cam = R_v p + t_v,
    K_v = [[f_s(c_v) f_v, 0, w_v/2], [0, f_s(c_v) f_v, h_v/2], [0, 0, 1]],  f_v = max(h_v, w_v)

with P the starting shape (the mean head or a combined regressor estimate), alpha the identity
coefficients and deltaP the corrective field (eq. 2), both shared by all views, beta_v, R_v, t_v per
view, and one focal scale per *camera group*
``c_v`` (views from one camera share their intrinsics; every view its own group when they do not).

Energy (eq. 4 summed over views):

    E = sum_v E_l(v) + omega_c (||L deltaP||^2 + lambda_delta ||deltaP||^2)
        + omega_r [ sum_v (||beta_v / sigma||^2 + lambda_q ||q_v (-) q_v^0||^2) + lambda_f sum_c log^2 f_s(c)
                    + lambda_id ||alpha||^2 ]

with E_l, the priors and their weights exactly as the single-view fit's
(:func:`digitaltwin_jax.energies.landmarks.landmark_residual`, :mod:`digitaltwin_jax.energies.priors`,
:class:`~digitaltwin_jax.fitting.FitConfig`), jaw landmarks sliding on the silhouette of each view
(:func:`~digitaltwin_jax.energies.landmarks.select_contour`, re-chosen every iteration).

Solver: damped Gauss-Newton (Levenberg-Marquardt with step halving) on the dense stacked residual
(``V * 136 + priors`` rows, ``K + V (M + 6) + C`` unknowns: at most a few hundred), the Jacobian from
``jax.jacfwd`` of the residual, jit-compiled, float64 inside ``jax.enable_x64``.  The generic structured
solver of :mod:`digitaltwin_jax.solvers` works on one face's :class:`~digitaltwin_jax.fitting.FitVariables`;
the shared unknowns of several faces need this small dense one.  Rotations are updated
multiplicatively (``q_v <- q_v * exp(w_v)``, the axis-angle increment ``w_v`` is the unknown), so no
quaternion gauge is needed.  Blendshape weights are projected onto ``config.beta_bounds`` after each
step.  Initialisation: every view's single-view fit (:func:`digitaltwin_jax.fitting.fit`: EPnP pose,
focal, expression) from the starting shape; with shared intrinsics the group's focal scale starts at
the median of its views'.

Shared corrective field.  E_c is the single-view fit's eq. 2 with its Laplacian L and lambda_delta
(:func:`digitaltwin_jax.fitting.prepare`, :mod:`digitaltwin_jax.energies.corrective`) at
beta = beta^{t-1}: the expression-change part L B (beta - beta^{t-1}) of eq. 2 belongs to one photo's
expression, and one field serves every photo (it is also the value eq. 2 converges to).  deltaP
enters the landmark terms only at the views' landmark samples, so it is eliminated exactly as in the
single-view fit: the unknowns are its values ``d`` at the distinct samples the views use (the 52 fixed
landmarks and each view's slid jaw points; padded with samples no view uses to ``52 + 16 V`` rows so
that the shapes stay fixed -- such a sample only adds a free variable and does not change the
minimum), and ``min E_c = sum_c d_c^T G^{-1} d_c``, ``G = S A^{-1} S^T``
(:func:`~digitaltwin_jax.energies.corrective.condensed_residual`).  When the jaw samples move between
iterations the field is recovered at the handles and sampled at the new samples
(:func:`~digitaltwin_jax.energies.corrective.offsets_at_handles`); the full field at the end by
:func:`~digitaltwin_jax.energies.corrective.corrective_field`.  On or off by
``MultiFitConfig.fit_corrective`` (docs page "Several photos", Measurements has the measurement).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import intrinsics_np
from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.energies import priors
from digitaltwin_jax.fitting import FitConfig, fit, initial_pose, prepare
from digitaltwin_jax.geometry.rotations import axis_angle_to_quaternion, quaternion_multiply, quaternion_to_matrix
from digitaltwin_jax.model.head_model import HeadModel

__all__ = ["MultiFitConfig", "MultiViewFit", "fit_views", "residual_fn"]


@dataclasses.dataclass(frozen=True)
class MultiFitConfig:
    """Settings of :func:`fit_views`.

    Attributes:
      fit: the single-view :class:`~digitaltwin_jax.fitting.FitConfig` whose weights and priors the
        joint energy uses (omega_r, lambda_f, lambda_q, expression_sigma, lambda_identity,
        num_identity, jaw_weight, jaw_tangent_weight, beta_bounds, contour_points,
        contour_hysteresis, sliding_contour), and which initialises every view.
      num_iterations: Gauss-Newton iterations of the joint solve (jaw points re-slid before each).
      fit_identity: also optimise the shared identity coefficients alpha (else the starting shape is
        the shared head, and poses, focal and expressions are fitted).  Off by default: on the tuning
        multi-view set (seed 5001, 20 heads with all 5 views detected, ``experiments/multiview_fidelity.py``)
        fitting alpha to dlib's 68 landmarks made the head worse, more so with more views (ARMSE at
        d = 95 mm, guarded regressor start: 1 view 3.167 mm, 3 views 3.259 mm with lambda_identity 4;
        3.017 / 3.020 with 16; without the identity fit 2.996 / 2.952; an earlier regressor): the
        detector's landmarks differ from the model's landmark vertices systematically, and more views
        do not average that out.  With the shipped regressor v3 (tuning seed 5001, 25 heads) the
        identity fit against its start is +0.19 / +0.46 / +0.57 mm at 1 / 3 / 5 photos, and +0.09 /
        +0.07 / +0.10 with ``fit_views(landmark_offsets=)`` (docs page "Several photos", "Why more photos help so little").
      damping: Levenberg-Marquardt factor (relative to the diagonal of J^T J).
      init_single_fit: initialise each view by the single-view fit (else EPnP with f_s = 1, neutral).
      focal_prior_per_view: count the focal prior once per view of a camera group (the single-view
        balance of prior and landmarks kept per photo) instead of once per camera.
      fit_corrective: fit the corrective field deltaP shared by all views (module docstring), with
        ``fit.omega_c``, ``fit.lambda_delta`` and ``fit.laplacian``.  On (the paper's model): on the
        tuning multi-view set (seed 5001, 20 heads with all 5 views detected) it changed ARMSE at
        d = 95 mm by +0.001 / -0.001 / +0.001 mm at 1 / 3 / 5 views (paired intervals within
        +-0.004 mm; omega_c 2.5 or 0.25: within +-0.005 mm), so it does not lose; it moves the
        landmark region by ~0.1 mm (omega_c 25) to ~2 mm (0.25).
    """

    fit: FitConfig = FitConfig()
    num_iterations: int = 12
    fit_identity: bool = False
    damping: float = 1e-6
    init_single_fit: bool = True
    focal_prior_per_view: bool = False
    fit_corrective: bool = True

    def __post_init__(self):
        if self.num_iterations < 0 or not self.damping >= 0:
            raise ValueError(f"MultiFitConfig needs num_iterations >= 0 and damping >= 0, got {self}")


@dataclasses.dataclass(frozen=True)
class MultiViewFit:
    """Result of :func:`fit_views` (numpy float64; V views, C camera groups).

    Attributes:
      neutral: ``(N, 3)`` the shared neutral head P + sum alpha_k I_k + deltaP (mm, head frame).
      delta_p: ``(N, 3)`` the shared corrective field deltaP (zero when not fitted).
      alpha: ``(K,)`` identity coefficients (K = 0 when not fitted).
      beta: ``(V, M)``; q: ``(V, 4)`` unit wxyz (w >= 0); t: ``(V, 3)`` mm.
      focal_scale: ``(V,)`` each view's f_s (equal within a camera group); camera_groups: ``(V,) int``.
      vertices: ``(V, N, 3)`` each view's posed head (neutral + expression), head frame.
      vertices_camera: ``(V, N, 3)`` the same in each view's camera frame.
      intrinsics: ``(V, 3, 3)``.
      landmarks_2d: ``(V, 68, 2)`` projected landmark samples; reprojection_errors: ``(V, 68)`` px (NaN missing).
      landmark_indices, landmark_weights: ``(V, 68, 3)`` the final samples (vertex ids, barycentrics).
      energy: ``(num_iterations + 1,)`` E before each iteration and at the end.
      success: bool, finite result.
    """

    neutral: np.ndarray
    delta_p: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    q: np.ndarray
    t: np.ndarray
    focal_scale: np.ndarray
    camera_groups: np.ndarray
    vertices: np.ndarray
    vertices_camera: np.ndarray
    intrinsics: np.ndarray
    landmarks_2d: np.ndarray
    reprojection_errors: np.ndarray
    landmark_indices: np.ndarray
    landmark_weights: np.ndarray
    energy: np.ndarray
    success: bool


def _points(x, d):
    """``(V, 68, 3)`` head-frame landmark samples of every view."""
    p = d["s_base"]
    if d["s_id"].shape[1]:
        p = p + jnp.einsum("k,vkjc->vjc", x["alpha"], d["s_id"])
    p = p + jnp.einsum("vm,vmjc->vjc", x["beta"], d["s_ex"])
    if "offsets" in x and x["offsets"].shape[0]:  # the shared corrective field at each view's samples
        p = p + x["offsets"][d["slot"]]
    return p


def _rotations(x, d):
    return jax.vmap(quaternion_multiply)(d["q_ref"], axis_angle_to_quaternion(x["w"]))


def residual_fn(x, d, w):
    """The stacked residual ``(R,)`` whose squared norm is the energy E of the module docstring.

    Args:
      x: unknowns ``{"alpha": (K,), "beta": (V, M), "w": (V, 3) axis-angle increments, "t": (V, 3),
        "log_fs": (C,)}`` and, with the corrective field, ``"offsets": (S, 3)`` deltaP at the S samples.
      d: data ``{"s_base": (V, 68, 3), "s_id": (V, K, 68, 3), "s_ex": (V, M, 68, 3)`` the starting
        shape and bases sampled at each view's landmark samples, ``"lm": (V, 68, 2)``, ``"mask": (V, 68)``,
        ``"frames": (V, 68, 2, 2)``, ``"scale": (V,)``, ``"focal": (V,)``, ``"principal": (V, 2)``,
        ``"q_ref": (V, 4)`` the rotation the increments apply to, ``"q0": (V, 4)`` the prior's rotation,
        ``"cam": (V,) int``, ``"cam_weight": (C,)`` the focal prior's count per camera, ``"sigma": (M,)``};
        with the corrective field also ``"slot": (V, 68) int`` each landmark's row of ``offsets``,
        ``"slot_idx", "slot_w": (S, 3)`` the samples (handle-local), ``"slot_chol": (S, S)`` their
        :func:`~digitaltwin_jax.energies.corrective.gram_cholesky`, ``"corrective"`` the condensation.
      w: ``(5,)`` or ``(6,)`` square roots of the weights: expression, focal, rotation, identity priors,
        landmarks (and omega_c with the corrective field).
    """
    pts = _points(x, d)
    q = _rotations(x, d)
    fs = jnp.exp(x["log_fs"])[d["cam"]]
    lm = jax.vmap(lmk.landmark_residual)(pts, d["lm"], d["mask"], d["scale"], q, x["t"], fs, d["focal"],
                                         d["principal"], d["frames"])
    parts = [w[4] * lm.reshape(-1),
             w[0] * jax.vmap(priors.expression_prior_residual, (0, None))(x["beta"], d["sigma"]).reshape(-1),
             w[1] * jnp.sqrt(d["cam_weight"]) * x["log_fs"],
             w[2] * jax.vmap(priors.rotation_prior_residual)(q, d["q0"]).reshape(-1)]
    if x["alpha"].shape[0]:
        parts.append(w[3] * priors.identity_prior_residual(x["alpha"]))
    if "offsets" in x and x["offsets"].shape[0]:
        cc = d["corrective"]
        parts.append(w[5] * corr.condensed_residual(jnp.zeros(cc.r_q.shape[0], x["offsets"].dtype), x["offsets"],
                                                    d["slot_idx"], d["slot_w"], cc, d["slot_chol"]))
    return jnp.concatenate(parts)


@jax.jit
def _slide(line_pts, q, t, fs, focal, principal, previous, hysteresis_px):
    """The silhouette candidate of every jaw line in every view: ``(V, 17) int32``."""
    return jax.vmap(lmk.select_contour)(line_pts, q, t, fs, focal, principal, previous, hysteresis_px)


@functools.partial(jax.jit, static_argnames=("lo", "hi"))
def _lm_step(x, d, w, damping, lo, hi):
    """One damped Gauss-Newton step with step halving; returns ``(x_new, E_before, E_after)``."""
    flat, unravel = jax.flatten_util.ravel_pytree(x)

    def r_flat(z):
        return residual_fn(unravel(z), d, w)

    r = r_flat(flat)
    J = jax.jacfwd(r_flat)(flat)
    A = J.T @ J
    g = J.T @ r
    diag = jnp.diag(A)
    A = A + jnp.diag(damping * diag + 1e-12 * jnp.max(diag) + 1e-12)
    step = -jnp.linalg.solve(A, g)
    e0 = r @ r

    def candidate(s):
        xn = unravel(flat + s * step)
        xn = dict(xn, beta=jnp.clip(xn["beta"], lo, hi))
        rn = residual_fn(xn, d, w)
        return xn, rn @ rn

    def body(carry, s):
        best_x, best_e, done = carry
        xn, en = candidate(s)
        take = jnp.logical_and(~done, en < best_e)
        best_x = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), xn, best_x)
        return (best_x, jnp.where(take, en, best_e), done | take), None

    scales = 0.5 ** jnp.arange(10, dtype=flat.dtype)
    (xb, eb, _), _ = jax.lax.scan(body, (x, e0, jnp.asarray(False)), scales)
    return xb, e0, eb


def _sample_table(problem):
    """Every distinct landmark sample a view can use, handle-local: the 68 fixed landmarks and the
    candidates of the 17 jaw lines, the same point listed once (so that ``G = S A^{-1} S^T`` stays
    invertible).  Returns ``(idx (T, 3) int32, w (T, 3) float64, fixed_slot (68,), line_slot (17, C))``."""
    keys, idx, wts = {}, [], []

    def slot(i, w):
        acc = {}
        for a, b in zip(np.asarray(i).tolist(), np.asarray(w, np.float64).tolist()):
            if b != 0.0:
                acc[a] = acc.get(a, 0.0) + b
        key = tuple(sorted((a, round(b, 6)) for a, b in acc.items()))
        if key not in keys:
            keys[key] = len(idx)
            idx.append(i)
            wts.append(w)
        return keys[key]

    fixed = np.array([slot(i, w) for i, w in zip(problem.fixed_idx, problem.fixed_w)])
    line = np.array([[slot(i, w) for i, w in zip(li, lw)] for li, lw in zip(problem.lines_idx, problem.lines_w)])
    return np.asarray(idx, np.int32), np.asarray(wts, np.float64), fixed, line


def _choose_slots(table, contour, jaw, n_slots, sliding):
    """The samples of the shared field for the current jaw choice ``contour (V, 17)``: ``(slot (V, 68)
    row of each view's landmark, idx (n_slots, 3), w (n_slots, 3))``; the samples the views use first,
    then unused ones up to ``n_slots`` (free variables that do not change the minimum)."""
    idx, w, fixed, line = table
    used = np.repeat(fixed[None], contour.shape[0], 0)
    if sliding:
        used[:, jaw] = line[jaw[None], contour[:, jaw]]
    rows = np.unique(used)
    rows = np.concatenate([rows, np.setdiff1d(np.arange(idx.shape[0]), rows)[: n_slots - rows.size]])
    where = np.full(idx.shape[0], -1)
    where[rows] = np.arange(rows.size)
    return where[used].astype(np.int32), idx[rows], w[rows]


def _check_inputs(model, landmarks_2d, image_sizes, camera_groups):
    lm = np.asarray(landmarks_2d, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2) or lm.shape[0] < 1:
        raise ValueError(f"landmarks_2d must have shape (V, 68, 2) with V >= 1, got {lm.shape}")
    nv = lm.shape[0]
    if np.isinf(lm).any():
        raise ValueError("landmarks_2d has infinite values; mark missing landmarks with NaN")
    sizes = np.asarray(image_sizes, np.float64)
    if sizes.shape == (2,):
        sizes = np.tile(sizes, (nv, 1))
    if sizes.shape != (nv, 2) or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"image_sizes must be (h, w) or (V, 2) positive, got {np.asarray(image_sizes).shape}")
    if camera_groups is None:
        groups = np.arange(nv)
    else:
        groups = np.asarray(camera_groups)
        if groups.shape != (nv,) or groups.dtype.kind not in "iu":
            raise ValueError(f"camera_groups must be (V,) integers, got {groups.shape} {groups.dtype}")
    _, cam = np.unique(groups, return_inverse=True)
    return lm, sizes.astype(np.int64), cam.astype(np.int32)


def fit_views(model: HeadModel, landmarks_2d, image_sizes, shape=None, config: MultiFitConfig = MultiFitConfig(), *,
              camera_groups=None, landmark_offsets=None, landmark_weights=None) -> MultiViewFit:
    """Fit one shared head to the 68 landmarks of ``V`` photos of one person (module docstring).

    Args:
      model: the head model.
      landmarks_2d: ``(V, 68, 2)`` iBUG-68 pixels per view (NaN rows: missing landmarks).
      image_sizes: ``(h, w)`` shared, or ``(V, 2)``.
      shape: optional ``(N, 3)`` starting neutral shape P (default the model's mean head).
      config: :class:`MultiFitConfig`.
      camera_groups: optional ``(V,) int``; views with equal labels share their focal scale (one
        camera).  Default: every view its own intrinsics.
      landmark_offsets: optional ``(68, 3)`` mm, head frame: where the detector's landmark ``j`` lies
        relative to the model's landmark sample ``j`` (:mod:`.landmark_offsets`); added to the 52
        fixed samples (rows of the sliding jaw points are ignored) in the residual and in the
        reported projections.  None: the model's samples as they are.
      landmark_weights: optional ``(68,)`` positive factors on each landmark's term of the energy (e.g. the
        inverse variance of the detector's noise at that landmark, :mod:`.landmark_offsets`), multiplied into
        the jaw weights.  None: all 1.

    Returns:
      :class:`MultiViewFit`.

    Raises:
      ValueError: wrong shapes, or a view with fewer than 6 finite or collinear landmarks (the
        message names the view).
    """
    lm, sizes, cam = _check_inputs(model, landmarks_2d, image_sizes, camera_groups)
    nv = lm.shape[0]
    fc = config.fit
    lm_off = np.zeros((68, 3))
    if landmark_offsets is not None:
        lm_off = np.array(landmark_offsets, np.float64)
        if lm_off.shape != (68, 3) or not np.all(np.isfinite(lm_off)):
            raise ValueError(f"landmark_offsets must be finite (68, 3), got {np.shape(landmark_offsets)}")
        if fc.sliding_contour:
            lm_off[[j for j in lmk.JAW if j != lmk.CHIN]] = 0.0
    base = np.asarray(model.vertices, np.float64) if shape is None else np.asarray(shape, np.float64)
    if base.shape != (model.num_vertices, 3) or not np.all(np.isfinite(base)):
        raise ValueError(f"shape must be finite with shape ({model.num_vertices}, 3), got {base.shape}")
    k = min(fc.num_identity, model.num_identity) if config.fit_identity else 0
    m = model.expression_basis.shape[0]
    id_basis = np.asarray(model.identity_basis[:k], np.float64)
    ex_basis = np.asarray(model.expression_basis, np.float64)
    lines = lmk.contour_lines(model.vertices, model.faces, model.landmark_indices, model.contour_candidates,
                              model.outer_surface_mask, max_points=fc.contour_points)
    fixed_idx, fixed_w = lmk.fixed_samples(model.landmark_indices)

    # per-view initialisation (single-view fits or EPnP)
    q0 = np.zeros((nv, 4))
    t0 = np.zeros((nv, 3))
    fs0 = np.ones(nv)
    beta0 = np.zeros((nv, m))
    for v in range(nv):
        hw = tuple(int(s) for s in sizes[v])
        try:
            if config.init_single_fit:
                r = fit(model, lm[v], hw, shape=base, config=dataclasses.replace(fc, fit_identity=False))
                q0[v], t0[v] = np.asarray(r.params.q, np.float64), np.asarray(r.params.t, np.float64)
                fs0[v] = float(r.params.f_s)
                beta0[v] = np.asarray(r.params.beta, np.float64)
            else:
                q0[v], t0[v] = initial_pose(model, lm[v], hw, base, fc)
        except ValueError as e:
            raise ValueError(f"view {v}: {e}") from None
    q0 = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    ncam = int(cam.max()) + 1
    log_fs = np.array([np.log(np.median(fs0[cam == c])) for c in range(ncam)])

    valid = np.all(np.isfinite(lm), axis=2)
    weights = np.ones(68)
    weights[:17] = fc.jaw_weight
    if landmark_weights is not None:
        lw = np.asarray(landmark_weights, np.float64)
        if lw.shape != (68,) or not np.all(np.isfinite(lw) & (lw > 0)):
            raise ValueError(f"landmark_weights must be (68,) finite and positive, got {np.shape(landmark_weights)}")
        weights = weights * lw
    w_eye = np.array([lmk.eye_distance(lm[v]) for v in range(nv)])
    if not np.all(np.isfinite(w_eye) & (w_eye >= 1.0)):
        bad = int(np.flatnonzero(~(np.isfinite(w_eye) & (w_eye >= 1.0)))[0])
        raise ValueError(f"view {bad}: both outer eye corners (iBUG 36, 45) are needed")
    scale = 100.0 / w_eye
    data = {
        "lm": np.where(valid[..., None], np.nan_to_num(lm), 0.0),
        "mask": np.where(valid, weights, 0.0),
        "frames": np.stack([lmk.contour_frames(lm[v], fc.jaw_tangent_weight) for v in range(nv)]),
        "scale": scale,
        "focal": sizes.max(axis=1).astype(np.float64),
        "principal": np.stack([sizes[:, 1] / 2.0, sizes[:, 0] / 2.0], axis=1),
        "q0": q0,
        "cam": cam,
        "cam_weight": (np.bincount(cam, minlength=ncam).astype(np.float64) if config.focal_prior_per_view
                       else np.ones(ncam)),
        "sigma": np.full(m, fc.expression_sigma),
    }
    sw = np.sqrt(np.array([fc.omega_r, fc.omega_r * fc.lambda_f, fc.omega_r * fc.lambda_q,
                           fc.omega_r * fc.lambda_identity, 1.0, fc.omega_c]))
    x = {"alpha": np.zeros(k), "beta": beta0, "w": np.zeros((nv, 3)), "t": t0, "log_fs": log_fs}
    q_ref = q0.copy()
    sample_idx = np.repeat(fixed_idx[None], nv, 0).astype(np.int64)
    sample_w = np.repeat(fixed_w[None], nv, 0).astype(np.float64)
    contour = np.zeros((nv, 17), np.int32)
    jaw = np.array([j for j in lmk.JAW if j != lmk.CHIN])
    line_ex = np.sum(ex_basis[:, lines.indices] * lines.weights[None, ..., None], axis=3)  # (M, 17, C, 3)
    energies = []
    lo, hi = (float(b) for b in fc.beta_bounds)
    if config.fit_corrective:
        problem = prepare(model, dataclasses.replace(fc, fit_identity=False), corrective=True)
        if not np.array_equal(np.asarray(problem.handles)[problem.lines_idx], lines.indices):
            raise RuntimeError("the fitting problem's jaw lines differ from the multi-view fit's")
        table = _sample_table(problem)
        n_slots = min(table[0].shape[0], 68 - jaw.size + jaw.size * nv)
        x["offsets"] = np.zeros((n_slots, 3))
        delta_h = np.zeros((problem.handles.shape[0], 3))
        slots = None  # (handle-local samples (S, 3), weights (S, 3), Gram factor) of the current offsets
    delta_p = np.zeros_like(base)
    with jax.enable_x64(True):
        for it in range(config.num_iterations + 1):
            if config.fit_corrective and slots is not None:  # the field at the handles (and, at the end, everywhere)
                offs, zero_b = jnp.asarray(x["offsets"]), jnp.zeros(m)
                delta_h = np.asarray(corr.offsets_at_handles(zero_b, offs, slots[0], slots[1], problem.corrective,
                                                              slots[2]))
                if it == config.num_iterations:
                    delta_p = np.asarray(corr.corrective_field(zero_b, offs, slots[0], slots[1], jnp.asarray(problem.handles),
                                                               jnp.asarray(ex_basis), problem.corrective, slots[2]))
            shape_now = base + (np.tensordot(np.asarray(x["alpha"]), id_basis, axes=1) if k else 0.0)
            q_now = np.asarray(_rotations({"w": jnp.asarray(x["w"])}, {"q_ref": jnp.asarray(q_ref)}))
            if fc.sliding_contour:
                line_shape = np.sum(shape_now[lines.indices] * lines.weights[..., None], axis=2)  # (17, C, 3)
                if config.fit_corrective:
                    line_shape = line_shape + np.sum(delta_h[problem.lines_idx] * problem.lines_w[..., None], axis=2)
                line_pts = line_shape[None] + np.einsum("vm,mlcd->vlcd", np.asarray(x["beta"]), line_ex)
                hyst = fc.contour_hysteresis / scale if it else np.full(nv, -np.inf)  # first pass: no hysteresis
                sel = np.asarray(_slide(line_pts, q_now, np.asarray(x["t"]), np.exp(np.asarray(x["log_fs"]))[cam],
                                        data["focal"], data["principal"], contour, hyst))
                contour = sel
                sample_idx[:, jaw] = lines.indices[jaw[None], sel[:, jaw]]
                sample_w[:, jaw] = lines.weights[jaw[None], sel[:, jaw]]
            d = dict(data)
            d["s_base"] = np.sum(base[sample_idx] * sample_w[..., None], axis=2)
            if landmark_offsets is not None:
                d["s_base"] = d["s_base"] + lm_off[None]
            d["s_id"] = np.einsum("kvjcd,vjc->vkjd", id_basis[:, sample_idx], sample_w) if k else np.zeros((nv, 0, 68, 3))
            d["s_ex"] = np.einsum("mvjcd,vjc->vmjd", ex_basis[:, sample_idx], sample_w)
            d["q_ref"] = q_ref
            if config.fit_corrective:
                d["slot"], slot_idx, slot_w = _choose_slots(table, contour, jaw, n_slots, fc.sliding_contour)
                slots = (jnp.asarray(slot_idx), jnp.asarray(slot_w))
                slots += (corr.gram_cholesky(*slots, problem.corrective),)
                x["offsets"] = np.sum(delta_h[slot_idx] * slot_w[..., None], axis=1)  # the field at the new samples
                d.update(slot_idx=slots[0], slot_w=slots[1], slot_chol=slots[2], corrective=problem.corrective)
            d = jax.tree_util.tree_map(lambda a: jnp.asarray(a), d)
            xj = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), x)
            if it == config.num_iterations:  # final energy only
                rr = residual_fn(xj, d, jnp.asarray(sw))
                energies.append(float(rr @ rr))
                break
            xn, e0, e1 = _lm_step(xj, d, jnp.asarray(sw), config.damping, lo, hi)
            energies.append(float(e0))
            x = jax.tree_util.tree_map(np.asarray, xn)
            # fold the rotation increments into the reference rotations
            q_ref = np.asarray(_rotations({"w": jnp.asarray(x["w"])}, {"q_ref": jnp.asarray(q_ref)}))
            q_ref = q_ref / np.linalg.norm(q_ref, axis=1, keepdims=True)
            x["w"] = np.zeros((nv, 3))
        q_fin = np.asarray(_rotations({"w": jnp.asarray(x["w"])}, {"q_ref": jnp.asarray(q_ref)}))
        q_fin = q_fin / np.linalg.norm(q_fin, axis=1, keepdims=True) * np.where(q_fin[:, :1] < 0, -1.0, 1.0)
        R = np.asarray(jax.vmap(quaternion_to_matrix)(jnp.asarray(q_fin)))
    alpha = np.asarray(x["alpha"], np.float64)
    beta = np.asarray(x["beta"], np.float64)
    neutral = base + (np.tensordot(alpha, id_basis, axes=1) if k else 0.0) + delta_p
    verts = neutral[None] + np.tensordot(beta, ex_basis, axes=1)
    t = np.asarray(x["t"], np.float64)
    vcam = np.einsum("vij,vnj->vni", R, verts) + t[:, None]
    fs = np.exp(np.asarray(x["log_fs"]))[cam]
    K = np.stack([intrinsics_np(tuple(sizes[v]), fs[v]) for v in range(nv)])
    pts = np.einsum("vjc,vjcd->vjd", sample_w, verts[np.arange(nv)[:, None, None], sample_idx])
    if landmark_offsets is not None:
        pts = pts + lm_off[None]
    with jax.enable_x64(True):
        proj = np.asarray(jax.vmap(lmk.project_points)(jnp.asarray(pts), jnp.asarray(q_fin), jnp.asarray(t),
                                                       jnp.asarray(fs), jnp.asarray(data["focal"]),
                                                       jnp.asarray(data["principal"])), np.float64)
    err = np.where(valid, np.linalg.norm(proj - np.nan_to_num(lm), axis=2), np.nan)
    ok = bool(np.all(np.isfinite(verts)) and np.all(np.isfinite(vcam)) and np.all(vcam[..., 2] > 0))
    return MultiViewFit(neutral=neutral, delta_p=delta_p, alpha=alpha, beta=beta, q=q_fin, t=t, focal_scale=fs, camera_groups=cam,
                        vertices=verts, vertices_camera=vcam, intrinsics=K, landmarks_2d=proj,
                        reprojection_errors=err, landmark_indices=sample_idx, landmark_weights=sample_w,
                        energy=np.asarray(energies), success=ok)

