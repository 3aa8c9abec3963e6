"""Non-rigid fitting of the head model to 68 image landmarks (paper section 3.4, eq. 1-4).

Composes the camera (:mod:`digitaltwin_jax.camera`), the energies
(:mod:`digitaltwin_jax.energies`) and the solver (:mod:`digitaltwin_jax.solvers.gauss_newton`);
no new maths here beyond the bookkeeping of the structured problem.

Model:  ``P_F = P + sum_k alpha_k I_k + sum_i beta_i B_i + deltaP``, ``p_cam = R(q) p + t``,
``K = [[f_s f, 0, w/2], [0, f_s f, h/2], [0, 0, 1]]`` with ``f = max(h, w)`` (the paper's text swaps h
and w in c_x, c_y; we use the correct assignment).  P is the regressed shape (``shape=``) or the
model's mean head; the identity coefficients alpha (N(0, 1), our extension) are optimised only with
``FitConfig(fit_identity=True)``.

Energy (eq. 4):  ``E = sum_k weight_k ||r_k||^2`` over a tuple of :class:`Term` s; the defaults
(:func:`default_terms`) are E_l (eq. 1), omega_c E_c (eq. 2) and omega_r E_r (eq. 3, split into its
parts, plus the identity prior).  A term is a plain function ``fn(v: FitVariables, data: FitData)
-> (R,) residual``; add, drop or re-weight terms by passing ``terms=`` to :func:`fit` - the solver
is untouched (see ``experiments/custom_energy_term.py``).

Structure.  The corrective field deltaP (``3 V`` unknowns) enters the landmark term only at the
68 sampled landmark points and E_c only through a constant sparse Laplacian, so it is eliminated
exactly (:mod:`digitaltwin_jax.energies.corrective`): the solver's unknowns are
:class:`FitVariables` = (beta, alpha, t, q, f_s, the 68 x 3 sampled offsets), a few hundred numbers,
and every Gauss-Newton step is a small dense float64 solve.  The full field is recovered at the end.
The solve runs in float64 inside ``jax.enable_x64(True)`` (a context manager: the user's global
JAX configuration is not changed); results are returned as float32 numpy arrays.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.camera import epnp_pose
from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.energies import priors
from digitaltwin_jax.geometry.rotations import quaternion_to_matrix
from digitaltwin_jax.model.head_model import HeadModel
from digitaltwin_jax.solvers.gauss_newton import GaussNewtonConfig, gauss_newton

__all__ = [
    "FitConfig",
    "FitVariables",
    "FitData",
    "FitParams",
    "FitResult",
    "FitProblem",
    "Term",
    "default_terms",
    "landmark_points",
    "landmark_pixels",
    "prepare",
    "initial_pose",
    "fit",
    "fit_batch",
]


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit`; the paper's values (section 4, "Implementation details") marked.

    Energy weights (E = E_l + omega_c E_c + omega_r E_r):
      omega_c: 25 (paper).  omega_r: 10 (paper).
      lambda_delta: 4 (paper, eq. 2).  lambda_q: 5 (paper, eq. 3).  num_iterations: N = 5 (paper).
      lambda_f: 80 (paper: 5).  Our landmark residual is in percent of the eye distance, not the
        paper's units, so its 5 is too weak here: on the out-of-distribution tuning renders (24-135 mm
        lenses, ``experiments/calibrate_fidelity.py``, seed 3001) the median focal error was 50% with
        5, 38% with 20, 25% with 80 and 29% with 320 (ARMSE unchanged within 0.002 mm).
    Priors we had to choose (the paper's sigma come from expression PCA we do not have):
      expression_sigma: sigma_i of eq. 3 for every blendshape (ICT weights live in [0, 1]).  0.05,
        calibrated so that a neutral face stays neutral: the sum of fitted weights on 40 neutral
        in-distribution tuning renders (seed 4001) was 2.65 with sigma 0.3, 1.41 with 0.15, 0.94 with
        0.1, 0.58 with 0.07 and 0.34 with 0.05 (target <= 0.5); on expressive tuning renders (true
        sum 0.69) it gives 0.46.  A blendshape at weight 1 then costs omega_r / sigma^2 = 4000, the
        same as a systematic 9 %-of-eye-distance error on ~50 landmarks: an open mouth or a smile
        (15-20 % on the mouth points) is still fitted, identity differences and detector noise are not.
      fit_identity: also fit the identity coefficients alpha (our extension; False in the paper).
      num_identity: how many leading identity modes to fit (<= model.num_identity).
      lambda_identity: prior ``omega_r * lambda_identity * ||alpha||^2`` on the N(0, 1) coefficients.
        4: on the out-of-distribution tuning renders the identity fit's paired ARMSE (d = 95 mm) to
        the template head was +0.02 mm with 1, -0.10 with 4, -0.04 with 16 (paper priors), -0.07
        with 8 (calibrated priors): identity from 68 landmarks is weakly determined, so the shape
        moves from the mean only where the landmarks insist.
      jaw_weight: multiplies the landmark weight of the 17 jaw points (they are the least reliable;
        a real-photo trial did best with slid or down-weighted jaw points).
      jaw_tangent_weight: the sliding jaw points' error along the detected outline is multiplied by
        this (the error across it by 1): where on the outline a jaw point sits is ill defined, where
        the outline is, is not (:func:`~digitaltwin_jax.energies.landmarks.contour_frames`).
    Switches and numerics:
      fit_expression / fit_corrective / fit_focal: optimise beta / deltaP / f_s (else fixed at 0 / 0 / 1).
      sliding_contour: re-choose the jaw landmarks on the silhouette each iteration (paper ref. [7]).
      contour_points: candidates per jaw line.
      contour_hysteresis: a jaw point moves to another candidate only when that one lies this many
        percent of the eye distance further out (stops flip-flopping between iterations).
      laplacian: ``"uniform"`` or ``"cotangent"`` weights of the E_c Laplacian (on the neutral mesh).
      beta_bounds: blendshape weights are clamped to this interval (ICT weights live in [0, 1]).
      damping: Levenberg-Marquardt factor of the solver.  Keep it small: the focal scale and the
        distance t_z are nearly interchangeable, and a larger Marquardt term (1e-3) slowed the
        descent along that valley so much that 5 iterations left ~2 degrees of rotation error.
      epnp_inner_only: initialise the pose from the 51 inner landmarks (jaw points slide).
    """

    omega_c: float = 25.0
    omega_r: float = 10.0
    lambda_delta: float = 4.0
    lambda_f: float = 80.0
    lambda_q: float = 5.0
    num_iterations: int = 5
    expression_sigma: float = 0.05
    fit_identity: bool = False
    num_identity: int = 100
    lambda_identity: float = 4.0
    jaw_weight: float = 0.5
    jaw_tangent_weight: float = 0.3
    fit_expression: bool = True
    fit_corrective: bool = True
    fit_focal: bool = True
    sliding_contour: bool = True
    contour_points: int = 12
    contour_hysteresis: float = 1.0
    laplacian: str = "uniform"
    beta_bounds: tuple[float, float] = (0.0, 1.0)
    damping: float = 1e-6
    epnp_inner_only: bool = True

    def __post_init__(self):
        for name in ("omega_c", "omega_r", "lambda_f", "lambda_q", "lambda_identity", "jaw_weight", "jaw_tangent_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lambda_delta > 0:
            raise ValueError(f"FitConfig.lambda_delta must be > 0, got {self.lambda_delta}")
        if not self.expression_sigma > 0:
            raise ValueError(f"FitConfig.expression_sigma must be > 0, got {self.expression_sigma}")
        if self.num_iterations < 0 or self.num_identity < 0 or self.contour_points < 1:
            raise ValueError("num_iterations and num_identity must be >= 0, contour_points >= 1")
        if self.laplacian not in corr.LAPLACIAN_KINDS:
            raise ValueError(f"FitConfig.laplacian must be one of {corr.LAPLACIAN_KINDS}, got {self.laplacian!r}")
        lo, hi = self.beta_bounds
        if not lo < hi:
            raise ValueError(f"FitConfig.beta_bounds must be (low, high) with low < high, got {self.beta_bounds}")


def _dataclass_pytree(data_fields, meta_fields=()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data_fields), meta_fields=list(meta_fields))

    return wrap


@_dataclass_pytree(["beta", "alpha", "t", "q", "f_s", "offsets"])
class FitVariables:
    """The solver's unknowns (a pytree).

    Attributes:
      beta: ``(M,)`` blendshape weights.  alpha: ``(K,)`` identity coefficients (K = 0 when off).
      t: ``(3,)`` mm.  q: ``(4,)`` wxyz (normalised inside every use).  f_s: ``()`` focal scale.
      offsets: ``(68, 3)`` the corrective field deltaP at the 68 current landmark samples (the rest
        of deltaP is eliminated exactly by the corrective term).
    """

    beta: Any
    alpha: Any
    t: Any
    q: Any
    f_s: Any
    offsets: Any


@_dataclass_pytree(
    [
        "landmarks", "mask", "frames", "scale", "focal", "principal", "q0", "beta_prev", "sample_idx",
        "sample_w", "gram_chol", "contour", "delta_h", "base_h", "identity_h", "expression_h", "expression_sigma",
        "lines_idx", "lines_w", "corrective",
    ]
)
class FitData:
    """Everything a term may read (a pytree; per-face fields first, then per-topology constants).

    Per face: landmarks ``(68, 2)`` px (0 where missing); mask ``(68,)`` weights (0 = missing);
    frames ``(68, 2, 2)`` residual metrics (:func:`~digitaltwin_jax.energies.landmarks.contour_frames`);
    scale ``()`` 100 / W_eye; focal ``()`` f = max(h, w); principal ``(2,)`` (w/2, h/2);
    q0 ``(4,)`` the initial (EPnP) rotation; beta_prev ``(M,)`` beta^{t-1};
    sample_idx ``(68, 3)`` handle-local vertex indices and sample_w ``(68, 3)`` barycentric weights of
    the current landmark samples (jaw points change every iteration); gram_chol ``(68, 68)`` the
    Cholesky factor of the corrective term's G for these samples (see
    :func:`~digitaltwin_jax.energies.corrective.gram_cholesky`); contour ``(17,) int32`` the current
    candidate on each jaw line; delta_h ``(H, 3)`` deltaP at
    the handles; base_h ``(H, 3)`` the shape P at the handles.
    Per topology: identity_h ``(K, H, 3)``, expression_h ``(M, H, 3)``, expression_sigma ``(M,)``,
    lines_idx / lines_w ``(17, C, 3)`` sliding-contour candidates (handle-local), corrective the
    :class:`~digitaltwin_jax.energies.corrective.CondensedCorrective`.
    """

    landmarks: Any
    mask: Any
    frames: Any
    scale: Any
    focal: Any
    principal: Any
    q0: Any
    beta_prev: Any
    sample_idx: Any
    sample_w: Any
    gram_chol: Any
    contour: Any
    delta_h: Any
    base_h: Any
    identity_h: Any
    expression_h: Any
    expression_sigma: Any
    lines_idx: Any
    lines_w: Any
    corrective: Any


_PER_FACE = (
    "landmarks", "mask", "frames", "scale", "focal", "principal", "q0", "beta_prev", "sample_idx", "sample_w", "gram_chol",
    "contour", "delta_h", "base_h",
)


@dataclasses.dataclass(frozen=True)
class Term:
    """One energy term: ``weight * ||fn(v, data)||^2`` (fn: module-level function, so jit caches)."""

    name: str
    fn: Callable[[FitVariables, FitData], jax.Array]
    weight: float = 1.0


# ----------------------------------------------------------------------------------------- terms


def landmark_points(v: FitVariables, data: FitData):
    """``(68, 3)`` head-frame positions of the current landmark samples on the deformed mesh."""
    idx, w = data.sample_idx, data.sample_w
    p = lmk.sample_points(data.base_h, idx, w) + v.offsets
    if data.identity_h.shape[0]:  # sample the bases first: (K, 68, 3), cheap under jacfwd
        p = p + jnp.tensordot(v.alpha, jnp.sum(data.identity_h[:, idx] * w[..., None], axis=2), axes=1)
    if data.expression_h.shape[0]:
        p = p + jnp.tensordot(v.beta, jnp.sum(data.expression_h[:, idx] * w[..., None], axis=2), axes=1)
    return p


def landmark_pixels(v: FitVariables, data: FitData):
    """``(68, 2)`` projected pixels of the current landmark samples."""
    return lmk.project_points(landmark_points(v, data), v.q, v.t, v.f_s, data.focal, data.principal)


_GLOBAL_LEAVES = ("beta", "alpha", "t", "q", "f_s")


def _sampled_basis(basis_h, data: FitData):
    # (B, H, 3) -> (B, 68, 3): the basis at the current landmark samples
    return jnp.sum(basis_h[:, data.sample_idx] * data.sample_w[..., None], axis=2)


@dataclasses.dataclass(frozen=True)
class LandmarkTerm:
    """E_l (eq. 1): ``(136,)`` residual in percent of the eye distance.

    Also supplies its Gauss-Newton block in closed structure (``normal_equations``): each landmark
    residual depends on its own 3 offsets only, so ``J^T J`` is dense in the ~160 global unknowns
    and block-diagonal in the 204 offsets (checked against ``jax.jacfwd`` in the tests).
    """

    def __call__(self, v: FitVariables, data: FitData):
        return lmk.landmark_residual(
            landmark_points(v, data), data.landmarks, data.mask, data.scale, v.q, v.t, v.f_s, data.focal, data.principal,
            data.frames,
        )

    def normal_equations(self, v: FitVariables, data: FitData):
        pts = landmark_points(v, data)
        # closed-form projection Jacobians: u = s f_s f x / z + c with (x, y, z) = R(q) p + t
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
        grad = FitVariables(
            beta=gg[:m], alpha=gg[m : m + k], t=gg[m + k : m + k + 3], q=gg[m + k + 3 : m + k + 7],
            f_s=gg[m + k + 7], offsets=jnp.einsum("nrd,nr->nd", jp, r),
        )
        n = pts.shape[0]
        h_go = jnp.einsum("nrg,nrd->gnd", jg, jp).reshape(n_g, 3 * n)
        h_oo = jnp.einsum("nrd,nre,nm->ndme", jp, jp, jnp.eye(n, dtype=jp.dtype)).reshape(3 * n, 3 * n)
        return jnp.sum(rr * rr), grad, [
            (_GLOBAL_LEAVES, _GLOBAL_LEAVES, jg2.T @ jg2),
            (_GLOBAL_LEAVES, ("offsets",), h_go),
            (("offsets",), ("offsets",), h_oo),
        ]


@dataclasses.dataclass(frozen=True)
class CorrectiveTerm:
    """E_c (eq. 2) with deltaP eliminated: ``(3 * 68 + M,)``; linear in (beta, offsets).

    ``normal_equations`` gives the exact blocks in closed form: with ``C = G^{-1}`` and
    ``Z_c = S Y_c``: H_oo = C (x) I_3, H_o,beta = C Z_c, H_beta,beta = sum_c Z_c^T C Z_c + R_Q^T R_Q.
    """

    def __call__(self, v: FitVariables, data: FitData):
        return corr.condensed_residual(
            v.beta - data.beta_prev, v.offsets, data.sample_idx, data.sample_w, data.corrective, data.gram_chol
        )

    def normal_equations(self, v: FitVariables, data: FitData):
        cc = data.corrective
        w = data.sample_w
        z = jnp.sum(cc.y_h[:, data.sample_idx, :] * w[None, :, :, None], axis=2)  # (3, n, M)
        b = v.beta - data.beta_prev
        n = w.shape[0]
        linv = jax.scipy.linalg.solve_triangular(data.gram_chol, jnp.eye(n, dtype=w.dtype), lower=True)
        c_mat = linv.T @ linv  # G^{-1}
        u = v.offsets.T + jnp.einsum("cnm,m->cn", z, b)  # (3, n): o_c + Z_c b
        cu = u @ c_mat  # (3, n), C symmetric
        rq = cc.r_q
        e = jnp.sum(u * cu) + jnp.sum(jnp.square(rq @ b))
        cz = jnp.einsum("ij,cjm->cim", c_mat, z)  # (3, n, M)
        grad = FitVariables(
            beta=jnp.einsum("cnm,cn->m", z, cu) + rq.T @ (rq @ b),
            alpha=jnp.zeros_like(v.alpha), t=jnp.zeros_like(v.t), q=jnp.zeros_like(v.q),
            f_s=jnp.zeros_like(v.f_s), offsets=cu.T,
        )
        h_bb = jnp.einsum("cnm,cnl->ml", z, cz) + rq.T @ rq
        h_ob = jnp.transpose(cz, (1, 0, 2)).reshape(3 * n, -1)  # rows (i, c)
        h_oo = jnp.kron(c_mat, jnp.eye(3, dtype=c_mat.dtype))
        return e, grad, [
            (("beta",), ("beta",), h_bb),
            (("offsets",), ("beta",), h_ob),
            (("offsets",), ("offsets",), h_oo),
        ]


landmark_term = LandmarkTerm()
corrective_term = CorrectiveTerm()


def expression_prior_term(v: FitVariables, data: FitData):
    """sum beta_i^2 / sigma_i^2 (eq. 3): ``(M,)``."""
    return priors.expression_prior_residual(v.beta, data.expression_sigma)


def focal_prior_term(v: FitVariables, data: FitData):
    """log^2 f_s (eq. 3): ``(1,)``."""
    return priors.focal_prior_residual(v.f_s)


def rotation_prior_term(v: FitVariables, data: FitData):
    """Deviation of q from the initial pose (eq. 3): ``(3,)``."""
    return priors.rotation_prior_residual(v.q, data.q0)


def identity_prior_term(v: FitVariables, data: FitData):
    """||alpha||^2 (our extension): ``(K,)``."""
    return priors.identity_prior_residual(v.alpha)


def quaternion_gauge_term(v: FitVariables, data: FitData):
    """|q|^2 - 1: fixes the free scale of q (no effect on the pose)."""
    return priors.quaternion_norm_residual(v.q)


def default_terms(config: FitConfig = FitConfig()) -> tuple[Term, ...]:
    """The paper's energy (eq. 4) as terms, weights from ``config``; drop/replace/add freely."""
    terms = [Term("landmarks", landmark_term, 1.0)]
    if config.fit_corrective:
        terms.append(Term("corrective", corrective_term, config.omega_c))
    if config.fit_expression:
        terms.append(Term("expression_prior", expression_prior_term, config.omega_r))
    if config.fit_focal:
        terms.append(Term("focal_prior", focal_prior_term, config.omega_r * config.lambda_f))
    terms.append(Term("rotation_prior", rotation_prior_term, config.omega_r * config.lambda_q))
    if config.fit_identity and config.num_identity > 0:
        terms.append(Term("identity_prior", identity_prior_term, config.omega_r * config.lambda_identity))
    terms.append(Term("quaternion_gauge", quaternion_gauge_term, 1.0))
    return tuple(terms)


# ------------------------------------------------------------------------------- per topology


@_dataclass_pytree(
    [
        "handles", "fixed_idx", "fixed_w", "lines_idx", "lines_w", "identity_h", "expression_h", "corrective",
        "mean", "identity_full", "expression_full",
    ],
    ["num_vertices"],
)
class FitProblem:
    """Per-topology constants of the structured problem (build with :func:`prepare`).

    Attributes:
      handles: ``(H,) int32`` every vertex a landmark sample can touch (sorted).
      fixed_idx, fixed_w: ``(68, 3)`` handle-local barycentric form of ``model.landmark_indices``.
      lines_idx, lines_w: ``(17, C, 3)`` handle-local sliding-contour candidates.
      identity_h: ``(K, H, 3)``; expression_h: ``(M, H, 3)`` bases at the handles.
      corrective: :class:`~digitaltwin_jax.energies.corrective.CondensedCorrective` or None.
      mean, identity_full, expression_full: ``(V, 3)``, ``(K, V, 3)``, ``(M, V, 3)`` the model for
        the full-mesh output.
      num_vertices: V.
    Index arrays are numpy; float arrays are float64 JAX arrays (made once, reused by every fit).
    """

    handles: Any
    fixed_idx: Any
    fixed_w: Any
    lines_idx: Any
    lines_w: Any
    identity_h: Any
    expression_h: Any
    corrective: Any
    mean: Any
    identity_full: Any
    expression_full: Any
    num_vertices: int


_PROBLEM_CACHE: dict = {}


def _problem_key(model: HeadModel, config: FitConfig):
    k = min(config.num_identity, model.num_identity) if config.fit_identity else 0
    return (id(model), k, config.fit_corrective, config.lambda_delta, config.laplacian, config.contour_points)


def prepare(model: HeadModel, config: FitConfig = FitConfig()) -> FitProblem:
    """Precompute the per-topology constants (numpy float64; ~1 s at 11K vertices, less at 3K).

    :func:`fit` calls this itself and memoises the result per model object and the config fields it
    depends on (``num_identity``, ``fit_identity``, ``fit_corrective``, ``lambda_delta``, ``laplacian``,
    ``contour_points``); call it yourself to control when the cost is paid.
    """
    key = _problem_key(model, config)
    hit = _PROBLEM_CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    fixed_idx, fixed_w = lmk.fixed_samples(model.landmark_indices)
    lines = lmk.contour_lines(
        model.vertices, model.faces, model.landmark_indices, model.contour_candidates, model.outer_surface_mask,
        max_points=config.contour_points,
    )
    handles = np.unique(np.concatenate([fixed_idx.ravel(), lines.indices.ravel()])).astype(np.int32)
    k = key[1]
    cc = None
    if config.fit_corrective:
        lap = corr.laplacian_matrix(model.vertices, model.faces, config.laplacian)
        cc = corr.condense_corrective(lap, model.expression_basis, handles, config.lambda_delta)
    with jax.enable_x64(True):
        dev = functools.partial(jnp.asarray, dtype=jnp.float64)
        if cc is not None:
            cc = dataclasses.replace(
                cc, ainv_hh=dev(cc.ainv_hh), y_h=dev(cc.y_h), r_q=dev(cc.r_q),
                system=corr.EllMatrix(jnp.asarray(cc.system.cols), dev(cc.system.vals)),
            )
        problem = FitProblem(
            handles=handles,
            fixed_idx=np.searchsorted(handles, fixed_idx).astype(np.int32),
            fixed_w=fixed_w.astype(np.float64),
            lines_idx=np.searchsorted(handles, lines.indices).astype(np.int32),
            lines_w=lines.weights.astype(np.float64),
            identity_h=dev(model.identity_basis[:k][:, handles]),
            expression_h=dev(model.expression_basis[:, handles]),
            corrective=cc,
            mean=dev(model.vertices),
            identity_full=dev(model.identity_basis[:k]),
            expression_full=dev(model.expression_basis),
            num_vertices=model.num_vertices,
        )
    if len(_PROBLEM_CACHE) >= 8:
        _PROBLEM_CACHE.pop(next(iter(_PROBLEM_CACHE)))
    _PROBLEM_CACHE[key] = (model, problem)
    return problem


# ---------------------------------------------------------------------------------- results


@_dataclass_pytree(["beta", "delta_p", "t", "q", "f_s", "alpha"])
class FitParams:
    """The paper's parameter vector p = [beta, deltaP, t, q, f_s] (+ alpha, our extension).

    Attributes: beta ``(M,)`` in beta_bounds; delta_p ``(V, 3)`` mm; t ``(3,)`` mm; q ``(4,)`` unit
    wxyz; f_s ``()``; alpha ``(K,)`` (K = 0 unless fit_identity).  Leading batch axes from fit_batch.
    """

    beta: Any
    delta_p: Any
    t: Any
    q: Any
    f_s: Any
    alpha: Any


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Output of :func:`fit` (numpy float32; :func:`fit_batch` adds a leading batch axis to all).

    Attributes:
      params: :class:`FitParams`.
      vertices: ``(V, 3)`` fitted mesh P_F in the head frame (mm).
      vertices_camera: ``(V, 3)`` the same in the OpenCV camera frame.
      landmarks_2d: ``(68, 2)`` projected landmark samples (jaw points at their slid positions).
      reprojection_errors: ``(68,)`` pixel distance to the input landmarks (NaN where missing).
      landmark_indices, landmark_weights: ``(68, 3)`` the final landmark samples (vertex ids,
        barycentric weights).
      energy: ``(N + 1,)`` E before each iteration and at the end.
      step_sizes: ``(N,)`` the solver's step length per iteration (0 = no decrease found).
      energy_terms: ``{name: ()}`` weighted final energy of each term.
      intrinsics: ``(3, 3)`` K.
      success: bool, finite result.
    """

    params: FitParams
    vertices: np.ndarray
    vertices_camera: np.ndarray
    landmarks_2d: np.ndarray
    reprojection_errors: np.ndarray
    landmark_indices: np.ndarray
    landmark_weights: np.ndarray
    energy: np.ndarray
    step_sizes: np.ndarray
    energy_terms: dict
    intrinsics: np.ndarray
    success: np.ndarray


# ------------------------------------------------------------------------------------ input


def _check_landmarks(landmarks_2d) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(landmarks_2d)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"landmarks_2d must be a real numeric array, got dtype {raw.dtype}")
    lm = raw.astype(np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks_2d must have shape (68, 2), got {lm.shape}")
    if np.isinf(lm).any():
        rows = np.flatnonzero(np.isinf(lm).any(axis=1)).tolist()
        raise ValueError(f"landmarks_2d has infinite values in rows {rows}; mark missing landmarks with NaN")
    valid = np.all(np.isfinite(lm), axis=1)
    if valid.sum() < 6:
        raise ValueError(f"need at least 6 finite landmarks to fit, got {int(valid.sum())}")
    p = lm[valid] - lm[valid].mean(axis=0)
    s = np.linalg.svd(p, compute_uv=False)
    if s[0] <= 1e-9 or s[1] / s[0] < 1e-3:
        raise ValueError("landmarks are (nearly) collinear or coincident: cannot fit a face to them")
    return lm, valid


def _check_image_size(image_size) -> tuple[int, int]:
    if len(image_size) != 2 or not all(np.isfinite(image_size)) or min(image_size) <= 0:
        raise ValueError(f"image_size must be (h, w) with positive entries, got {image_size}")
    return int(image_size[0]), int(image_size[1])


def _base_shape(model: HeadModel, shape) -> np.ndarray:
    if shape is None:
        return np.asarray(model.vertices, np.float64)
    s = np.asarray(shape, np.float64)
    if s.shape != (model.num_vertices, 3):
        raise ValueError(f"shape must have shape ({model.num_vertices}, 3), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("shape contains NaN or inf")
    return s


def initial_pose(model: HeadModel, landmarks_2d, image_size, shape=None, config: FitConfig = FitConfig()):
    """EPnP initial pose ``(q (4,), t (3,))`` float64 from the model's 3D landmarks (paper: [26]).

    Uses the 51 inner landmarks when ``config.epnp_inner_only`` (and at least 6 of them are valid).
    """
    lm, valid = _check_landmarks(landmarks_2d)
    base = _base_shape(model, shape)
    obj = base[np.asarray(model.landmark_indices)]
    use = valid.copy()
    if config.epnp_inner_only and valid[17:].sum() >= 6:
        use[:17] = False
    return epnp_pose(obj[use], lm[use], _check_image_size(image_size))


def _face_inputs(model, problem: FitProblem, config, landmarks_2d, image_size, shape, landmark_weights):
    """numpy per-face FitData fields and initial variables."""
    h, w = _check_image_size(image_size)
    lm, valid = _check_landmarks(landmarks_2d)
    base = _base_shape(model, shape)
    q0, t0 = initial_pose(model, lm, (h, w), base, config)
    weights = np.ones(68)
    weights[:17] = config.jaw_weight
    if landmark_weights is not None:
        lw = np.asarray(landmark_weights, np.float64)
        if lw.shape != (68,) or not np.all(np.isfinite(lw)) or np.any(lw < 0):
            raise ValueError("landmark_weights must be (68,) finite and >= 0")
        weights = weights * lw
    mask = np.where(valid, weights, 0.0)
    focal = float(max(h, w))
    principal = np.array([w / 2.0, h / 2.0])
    w_eye = lmk.eye_distance(lm)
    if not np.isfinite(w_eye) or w_eye < 1.0:  # fall back to the projected model's outer eye corners
        pr = np.asarray(quaternion_to_matrix(jnp.asarray(q0, jnp.float32)), np.float64)
        eyes = base[np.asarray(model.landmark_indices)[[lmk.RIGHT_EYE_OUTER, lmk.LEFT_EYE_OUTER]]] @ pr.T + t0
        px = focal * eyes[:, :2] / eyes[:, 2:3]
        w_eye = float(np.linalg.norm(px[0] - px[1]))
    m = problem.expression_h.shape[0]
    k = problem.identity_h.shape[0]
    nh = problem.handles.shape[0]
    data = dict(
        landmarks=np.where(valid[:, None], lm, 0.0),
        mask=mask,
        frames=lmk.contour_frames(lm, config.jaw_tangent_weight),
        scale=np.float64(100.0 / w_eye),
        focal=np.float64(focal),
        principal=principal,
        q0=q0,
        beta_prev=np.zeros(m),
        sample_idx=problem.fixed_idx,
        sample_w=problem.fixed_w,
        gram_chol=np.eye(68),
        contour=np.zeros(17, np.int32),
        delta_h=np.zeros((nh, 3)),
        base_h=base[problem.handles],
    )
    v0 = FitVariables(
        beta=np.zeros(m), alpha=np.zeros(k), t=t0, q=q0, f_s=np.float64(1.0), offsets=np.zeros((68, 3))
    )
    return data, v0, (None if shape is None else base)


def _shared_data(problem: FitProblem, config: FitConfig, m: int) -> dict:
    return dict(
        identity_h=problem.identity_h,
        expression_h=problem.expression_h,
        expression_sigma=np.full((m,), config.expression_sigma),
        lines_idx=problem.lines_idx,
        lines_w=problem.lines_w,
        corrective=problem.corrective,
    )


# ------------------------------------------------------------------------------------ solve


def _update(v: FitVariables, data: FitData, it, *, sliding: bool, corrective: bool, hysteresis: float = 0.0):
    if corrective:
        delta_h = corr.offsets_at_handles(
            v.beta - data.beta_prev, v.offsets, data.sample_idx, data.sample_w, data.corrective, data.gram_chol
        )
    else:
        delta_h = data.delta_h
    idx, w = data.sample_idx, data.sample_w
    if sliding:
        shape_h = data.base_h + jnp.tensordot(v.alpha, data.identity_h, axes=1) + jnp.tensordot(v.beta, data.expression_h, axes=1) + delta_h
        pts = lmk.sample_points(shape_h, data.lines_idx, data.lines_w)
        hyst = jnp.where(it == 0, -jnp.inf, hysteresis / data.scale)  # free choice in the first iteration
        sel = lmk.select_contour(pts, v.q, v.t, v.f_s, data.focal, data.principal, data.contour, hyst)
        jaw = jnp.arange(17)
        idx = idx.at[:17].set(data.lines_idx[jaw, sel])
        w = w.at[:17].set(data.lines_w[jaw, sel])
    if corrective:
        offsets = lmk.sample_points(delta_h, idx, w)
        chol = corr.gram_cholesky(idx, w, data.corrective)
    else:
        offsets, chol = v.offsets, data.gram_chol
    v = dataclasses.replace(v, offsets=offsets)
    contour = sel if sliding else data.contour
    data = dataclasses.replace(
        data, sample_idx=idx, sample_w=w, gram_chol=chol, contour=contour, delta_h=delta_h, beta_prev=v.beta
    )
    return v, data


def _solve(data: FitData, v0: FitVariables, weights, *, fns, gn: GaussNewtonConfig, flags):
    """The Gauss-Newton solve for one face (jitted; vmapped by fit_batch)."""
    fit_expression, fit_corrective, fit_focal, sliding, beta_lo, beta_hi, hysteresis = flags
    inf = jnp.inf
    free = FitVariables(beta=fit_expression, alpha=True, t=True, q=True, f_s=fit_focal, offsets=fit_corrective)
    lower = FitVariables(beta=beta_lo, alpha=-inf, t=-inf, q=-inf, f_s=0.05, offsets=-inf)
    upper = FitVariables(beta=beta_hi, alpha=inf, t=inf, q=inf, f_s=20.0, offsets=inf)
    upd = functools.partial(_update, sliding=sliding, corrective=fit_corrective, hysteresis=hysteresis)
    res = gauss_newton(fns, v0, data, weights, gn, update=upd, free=free, lower=lower, upper=upper)
    d = res.args
    last = dict(
        beta_prev=d.beta_prev, sample_idx=d.sample_idx, sample_w=d.sample_w, gram_chol=d.gram_chol,
        focal=d.focal, principal=d.principal,
    )
    return res.x, last, dict(energy=res.energies, step_sizes=res.step_sizes, energy_terms=res.term_energies, success=res.success)


def _outputs(v: FitVariables, last: dict, corrective, full, *, fit_corrective: bool):
    """Full-mesh outputs for one face (jitted separately: shared by every term set and config)."""
    base, identity, expression, handles = full
    if fit_corrective:
        delta = corr.corrective_field(
            v.beta - last["beta_prev"], v.offsets, last["sample_idx"], last["sample_w"], handles, expression, corrective,
            last["gram_chol"],
        )
    else:
        delta = jnp.zeros_like(base)
    verts = base + jnp.tensordot(v.alpha, identity, axes=1) + jnp.tensordot(v.beta, expression, axes=1) + delta
    qn = v.q / jnp.linalg.norm(v.q)
    qn = qn * jnp.where(qn[0] < 0, -1.0, 1.0)
    cam = verts @ quaternion_to_matrix(qn).T + v.t
    lm3 = lmk.sample_points(verts, handles[last["sample_idx"]], last["sample_w"])
    px = lmk.project_points(lm3, qn, v.t, v.f_s, last["focal"], last["principal"])
    return dict(
        beta=v.beta, alpha=v.alpha, t=v.t, q=qn, f_s=v.f_s, delta_p=delta, vertices=verts, vertices_camera=cam,
        landmarks_2d=px, sample_idx=handles[last["sample_idx"]], sample_w=last["sample_w"],
    )


_STATIC = ("fns", "gn", "flags")
_solve_jit = jax.jit(_solve, static_argnames=_STATIC)
_outputs_jit = jax.jit(_outputs, static_argnames=("fit_corrective",))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _solve_batch(data, v0, weights, *, fns, gn, flags):
    axes = FitData(**{f.name: (0 if f.name in _PER_FACE else None) for f in dataclasses.fields(FitData)})
    return jax.vmap(functools.partial(_solve, fns=fns, gn=gn, flags=flags), in_axes=(axes, 0, None))(data, v0, weights)


@functools.partial(jax.jit, static_argnames=("fit_corrective",))
def _outputs_batch(v, last, corrective, full, *, fit_corrective):
    base_axis = 0 if full[0].ndim == 3 else None
    fn = functools.partial(_outputs, fit_corrective=fit_corrective)
    return jax.vmap(fn, in_axes=(0, 0, None, (base_axis, None, None, None)))(v, last, corrective, full)


def _run(data, v0, weights, full, statics, batched: bool):
    fit_corrective = statics["flags"][1]
    if batched:
        v, last, info = _solve_batch(data, v0, weights, **statics)
        out = _outputs_batch(v, last, data.corrective, full, fit_corrective=fit_corrective)
    else:
        v, last, info = _solve_jit(data, v0, weights, **statics)
        out = _outputs_jit(v, last, data.corrective, full, fit_corrective=fit_corrective)
    return {**out, **info}


def _terms_static(terms, config):
    terms = default_terms(config) if terms is None else tuple(terms)
    if not terms:
        raise ValueError("terms must not be empty")
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ValueError(f"term names must be unique, got {names}")
    for t in terms:
        if not isinstance(t, Term) or not callable(t.fn) or not np.isfinite(t.weight) or t.weight < 0:
            raise TypeError(f"every term must be a Term with a callable fn and a weight >= 0, got {t!r}")
    return terms


def _statics(config: FitConfig, terms):
    gn = GaussNewtonConfig(num_iterations=config.num_iterations, damping=config.damping)
    flags = (
        config.fit_expression, config.fit_corrective, config.fit_focal, config.sliding_contour,
        float(config.beta_bounds[0]), float(config.beta_bounds[1]), float(config.contour_hysteresis),
    )
    return dict(fns=tuple(t.fn for t in terms), gn=gn, flags=flags)


def _full_arrays(problem: FitProblem, base):
    base = problem.mean if base is None else jnp.asarray(base, jnp.float64)
    return (base, problem.identity_full, problem.expression_full, jnp.asarray(problem.handles))


def _to_f64(tree):
    """Device arrays for a pytree: numpy floats become float64 (call inside ``enable_x64``)."""

    def conv(a):
        if isinstance(a, jax.Array):
            return a
        a = np.asarray(a)
        return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a

    return jax.device_put(jax.tree_util.tree_map(conv, tree))


def _result(out, terms, image_size, landmarks, valid) -> FitResult:
    o = {k: np.asarray(v) for k, v in out.items()}
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    h, w = image_size
    err = np.linalg.norm(o["landmarks_2d"] - landmarks, axis=-1)
    err = np.where(valid, err, np.nan)
    f = o["f_s"] * float(max(h, w))
    K = np.zeros(f.shape + (3, 3))
    K[..., 0, 0] = K[..., 1, 1] = f
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = w / 2.0, h / 2.0, 1.0
    return FitResult(
        params=FitParams(
            beta=f32(o["beta"]), delta_p=f32(o["delta_p"]), t=f32(o["t"]), q=f32(o["q"]), f_s=f32(o["f_s"]),
            alpha=f32(o["alpha"]),
        ),
        vertices=f32(o["vertices"]),
        vertices_camera=f32(o["vertices_camera"]),
        landmarks_2d=f32(o["landmarks_2d"]),
        reprojection_errors=f32(err),
        landmark_indices=o["sample_idx"].astype(np.int32),
        landmark_weights=f32(o["sample_w"]),
        energy=f32(o["energy"]),
        step_sizes=f32(o["step_sizes"]),
        energy_terms={t.name: f32(o["energy_terms"][..., i]) for i, t in enumerate(terms)},
        intrinsics=f32(K),
        success=o["success"].astype(bool),
    )


def fit(
    model: HeadModel,
    landmarks_2d,
    image_size,
    shape=None,
    config: FitConfig = FitConfig(),
    *,
    terms=None,
    landmark_weights=None,
    problem: FitProblem | None = None,
) -> FitResult:
    """Fit pose, focal, expression, corrective field (and optionally identity) to 68 landmarks.

    Args:
      model: the head model (any resolution; the topology's constants are cached, see :func:`prepare`).
      landmarks_2d: ``(68, 2)`` iBUG-68 pixels (x = column, y = row); NaN rows are missing landmarks.
      image_size: ``(h, w)`` pixels.
      shape: optional ``(V, 3)`` regressed neutral shape P (mm, head frame); default the mean head.
      config: :class:`FitConfig` (the paper's weights by default).
      terms: optional tuple of :class:`Term` replacing :func:`default_terms` ``(config)``.
      landmark_weights: optional ``(68,)`` non-negative per-landmark weights (times ``jaw_weight``).
      problem: optional :func:`prepare` output for this model and config.

    Returns:
      :class:`FitResult`.

    Raises:
      ValueError: wrong shapes, fewer than 6 finite landmarks, collinear landmarks, bad config.
    """
    terms = _terms_static(terms, config)
    problem = prepare(model, config) if problem is None else problem
    hw = _check_image_size(image_size)
    with jax.enable_x64(True):
        per_face, v0, base = _face_inputs(model, problem, config, landmarks_2d, hw, shape, landmark_weights)
        m = problem.expression_h.shape[0]
        data = _to_f64(FitData(**per_face, **_shared_data(problem, config, m)))
        weights = jnp.asarray([t.weight for t in terms], jnp.float64)
        out = _run(data, _to_f64(v0), weights, _full_arrays(problem, base), _statics(config, terms), batched=False)
        out = jax.device_get(out)
    lm = np.asarray(landmarks_2d, np.float64)
    return _result(out, terms, hw, lm, np.all(np.isfinite(lm), axis=1))


def fit_batch(
    model: HeadModel,
    landmarks_2d,
    image_size,
    shapes=None,
    config: FitConfig = FitConfig(),
    *,
    terms=None,
    landmark_weights=None,
    problem: FitProblem | None = None,
) -> FitResult:
    """:func:`fit` for ``B`` faces of one topology in one vmapped solve.

    Args:
      landmarks_2d: ``(B, 68, 2)``; image_size: ``(h, w)`` shared by all faces;
      shapes: optional ``(B, V, 3)`` regressed shapes; landmark_weights: optional ``(68,)`` or ``(B, 68)``.
      Others as :func:`fit`.

    Returns:
      :class:`FitResult` whose arrays have a leading batch axis ``B``.
    """
    terms = _terms_static(terms, config)
    problem = prepare(model, config) if problem is None else problem
    hw = _check_image_size(image_size)
    lm = np.asarray(landmarks_2d, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2) or lm.shape[0] < 1:
        raise ValueError(f"landmarks_2d must have shape (B, 68, 2), got {lm.shape}")
    b = lm.shape[0]
    if shapes is not None and np.shape(shapes)[0] != b:
        raise ValueError(f"shapes must have shape ({b}, V, 3), got {np.shape(shapes)}")
    lw = None if landmark_weights is None else np.broadcast_to(np.asarray(landmark_weights, np.float64), (b, 68))
    with jax.enable_x64(True):
        faces = [
            _face_inputs(model, problem, config, lm[i], hw, None if shapes is None else shapes[i], None if lw is None else lw[i])
            for i in range(b)
        ]
        per_face = {k: np.stack([f[0][k] for f in faces]) for k in faces[0][0]}
        v0 = jax.tree_util.tree_map(lambda *a: np.stack(a), *[f[1] for f in faces])
        base = np.stack([f[2] for f in faces]) if shapes is not None else faces[0][2]
        m = problem.expression_h.shape[0]
        data = _to_f64(FitData(**per_face, **_shared_data(problem, config, m)))
        weights = jnp.asarray([t.weight for t in terms], jnp.float64)
        out = _run(data, _to_f64(v0), weights, _full_arrays(problem, base), _statics(config, terms), batched=True)
        out = jax.device_get(out)
    return _result(out, terms, hw, lm, np.all(np.isfinite(lm), axis=2))
