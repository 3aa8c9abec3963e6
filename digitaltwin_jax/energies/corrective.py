"""Corrective-field term E_c (paper eq. 2) and its exact elimination for the structured solver.

E_c = || L (P_F) - L (P + sum_i beta_i^{t-1} B_i) ||^2 + lambda_delta || deltaP ||^2
    = || L (B (beta - beta^{t-1}) + deltaP) ||^2 + lambda_delta || deltaP ||^2

with ``L`` a constant sparse Laplacian of the model topology applied to each coordinate
(Laplacian surface editing, paper ref. [36]).  We use the *uniform* (umbrella) Laplacian
``L = I - D^{-1} A`` of the mesh graph by default: it is independent of the (identity-dependent)
geometry, always well defined, and ``A = L^T L + lambda_delta I`` then has a condition number of
about 1.6 (eigenvalues in [lambda_delta, lambda_delta + ~2.4^2]).  ``kind="cotangent"`` gives the
normalised cotangent weights of the neutral mesh (negative weights clamped to 0).  Units: L maps mm
to mm.  The identity part of P is not in the difference (identity changes are governed by the
identity prior, see :mod:`digitaltwin_jax.energies.priors`).

Elimination.  deltaP enters the landmark term only at the sampled landmark points (``d = S deltaP``,
``S`` the ``(n, V)`` barycentric sampling).  For fixed ``b = beta - beta^{t-1}`` and ``d``,
``min_{deltaP: S deltaP = d} E_c`` is a quadratic in (b, d) that we write exactly as residuals
(per coordinate c, ``K = L^T L``, ``A = K + lambda I``, ``Y_c = A^{-1} K B_c``, ``G = S A^{-1} S^T``):

  E_c* = sum_c || G^{-1/2} (d_c + S Y_c b) ||^2 + || R_Q b ||^2,   R_Q^T R_Q = lambda sum_c B_c^T K A^{-1} B_c.

The minimiser is ``deltaP_c = A^{-1} (S^T mu_c - K B_c b)`` with ``mu_c = G^{-1} (d_c + S Y_c b)``.
Only rows of ``A^{-1}`` and ``Y`` at the *handle* vertices (every vertex a landmark can ever sample)
are needed; :func:`condense_corrective` precomputes them once per topology (numpy float64, block
conjugate gradients), so one Gauss-Newton step costs a dense solve of a few hundred unknowns instead
of ``3 V``.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp


__all__ = [
    "EllMatrix",
    "ell_matrix",
    "ell_matvec",
    "gram_cholesky",
    "corrective_residual",
    "CondensedCorrective",
    "condense_corrective",
    "condensed_residual",
    "offsets_at_handles",
    "corrective_field",
    "CorrectiveTerm",
]

@functools.partial(jax.tree_util.register_dataclass, data_fields=["cols", "vals"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class EllMatrix:
    """A square sparse matrix in padded row (ELLPACK) form, usable inside jit/vmap.

    Attributes:
      cols: ``(n, k) int32`` column of each stored entry (padding points at the row itself).
      vals: ``(n, k)`` values (padding 0).  ``(M x)_i = sum_j vals[i, j] x[cols[i, j]]``: a gather and
        a sum per row, no scatter (scatter-adds are slow on CPU).
    """

    cols: jax.Array
    vals: jax.Array


def ell_matrix(m: sp.spmatrix, dtype=np.float64) -> EllMatrix:
    """Convert a square scipy matrix to :class:`EllMatrix` (numpy arrays)."""
    c = sp.csr_matrix(m)
    c.sum_duplicates()
    n = c.shape[0]
    counts = np.diff(c.indptr)
    k = max(int(counts.max()) if n else 0, 1)
    cols = np.repeat(np.arange(n, dtype=np.int32)[:, None], k, axis=1)
    vals = np.zeros((n, k), dtype)
    pos = np.arange(c.nnz) - np.repeat(c.indptr[:-1], counts)
    rows = np.repeat(np.arange(n), counts)
    cols[rows, pos] = c.indices
    vals[rows, pos] = c.data
    return EllMatrix(cols, vals)


def ell_matvec(m: EllMatrix, x):
    """``m @ x`` for ``x (n, ...)``."""
    x = jnp.asarray(x)
    vals = jnp.asarray(m.vals, x.dtype)
    if x.ndim == 1:
        return jnp.sum(vals * x[m.cols], axis=1)
    flat = x.reshape(x.shape[0], -1)  # gathering scalars per column is faster on CPU than rows
    out = jnp.stack([jnp.sum(vals * flat[:, i][m.cols], axis=1) for i in range(flat.shape[1])], axis=1)
    return out.reshape(x.shape)


def corrective_residual(delta_p, expression_offset, laplacian: EllMatrix, lambda_delta: float):
    """Residual of eq. 2 on the full field: ``(6 V,)`` = [L (B b + deltaP), sqrt(lambda) deltaP].

    Args:
      delta_p: ``(V, 3)`` corrective field deltaP.
      expression_offset: ``(V, 3)`` ``sum_i (beta_i - beta_i^{t-1}) B_i``.
      laplacian: ``(V, V)`` :class:`EllMatrix` L (see :func:`digitaltwin_jax.geometry.laplacian.normalized_laplacian`, :func:`ell_matrix`).
      lambda_delta: the paper's lambda_delta (4).
    """
    lap = ell_matvec(laplacian, jnp.asarray(expression_offset) + delta_p)
    return jnp.concatenate([lap.reshape(-1), jnp.sqrt(lambda_delta) * jnp.asarray(delta_p).reshape(-1)])


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["ainv_hh", "y_h", "r_q", "system"],
    meta_fields=["lambda_delta", "num_cg"],
)
@dataclasses.dataclass(frozen=True)
class CondensedCorrective:
    """Per-topology constants of the eliminated corrective field (see module docstring).

    Attributes:
      ainv_hh: ``(H, H)`` rows/columns of ``A^{-1}`` at the handle vertices.
      y_h: ``(3, H, M)`` rows of ``Y_c = A^{-1} K B_c`` at the handles (coordinate first).
      r_q: ``(M, M)`` upper-triangular ``R_Q`` with ``R_Q^T R_Q = lambda sum_c B_c^T K A^{-1} B_c``.
      system: ``(V, V)`` :class:`EllMatrix` of ``A = L^T L + lambda I`` (for the full-field recovery).
      lambda_delta: the lambda_delta these constants were built for.
      num_cg: CG iterations that reach 1e-7 relative accuracy on A (from its condition number; the
        field is in mm, so this is far below a micrometre).
    """

    ainv_hh: np.ndarray
    y_h: np.ndarray
    r_q: np.ndarray
    system: EllMatrix
    lambda_delta: float
    num_cg: int


def _block_cg(apply_a, rhs: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """Solve ``A X = rhs`` (SPD A, ``rhs (V, k)``) column-wise by conjugate gradients, float64."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rs = np.sum(r * r, axis=0)
    stop = tol**2 * np.maximum(np.sum(rhs * rhs, axis=0), 1e-300)
    for _ in range(max_iter):
        if np.all(rs <= stop):
            return x
        ap = apply_a(p)
        alpha = rs / np.maximum(np.sum(p * ap, axis=0), 1e-300)
        x += alpha * p
        r -= alpha * ap
        rs_new = np.sum(r * r, axis=0)
        p = r + (rs_new / np.maximum(rs, 1e-300)) * p
        rs = rs_new
    raise RuntimeError("conjugate gradients did not converge while condensing the corrective field")


def condense_corrective(laplacian: sp.spmatrix, expression_basis, handles, lambda_delta: float) -> CondensedCorrective:
    """Precompute :class:`CondensedCorrective` (numpy float64, once per topology and lambda_delta).

    Args:
      laplacian: ``(V, V)`` scipy sparse L.
      expression_basis: ``(M, V, 3)`` blendshapes B (M may be 0).
      handles: ``(H,) int`` sorted unique vertices that landmarks can sample.
      lambda_delta: > 0.
    """
    if not lambda_delta > 0:
        raise ValueError(f"lambda_delta must be > 0 for the corrective field, got {lambda_delta}")
    L = sp.csr_matrix(laplacian, dtype=np.float64)
    Lt = L.T.tocsr()
    n = L.shape[0]
    h = np.asarray(handles, dtype=np.int64)
    b = np.asarray(expression_basis, dtype=np.float64)
    m = b.shape[0]

    def apply_a(x):
        return Lt @ (L @ x) + lambda_delta * x

    e = np.zeros((n, h.size))
    e[h, np.arange(h.size)] = 1.0
    kb = np.concatenate([Lt @ (L @ b[:, :, c].T) for c in range(3)], axis=1) if m else np.zeros((n, 0))
    sol = _block_cg(apply_a, np.concatenate([e, kb], axis=1))
    ainv_hh = sol[h, : h.size]
    y = sol[:, h.size :].reshape(n, 3, m).transpose(1, 0, 2)  # (3, V, M)
    if m:
        q = lambda_delta * sum(b[:, :, c] @ y[c] for c in range(3))  # B_c^T K A^{-1} B_c = B_c^T Y_c
        q = 0.5 * (q + q.T) + 1e-12 * np.trace(q) / m * np.eye(m)
        r_q = np.linalg.cholesky(q).T
    else:
        r_q = np.zeros((0, 0))
    a_mat = (Lt @ L + lambda_delta * sp.eye(n)).tocsr()
    x = np.random.default_rng(0).standard_normal(n)
    for _ in range(50):  # power iteration: largest eigenvalue of A
        x = a_mat @ x
        x /= np.linalg.norm(x)
    kappa = 1.05 * float(x @ (a_mat @ x)) / lambda_delta
    rate = (np.sqrt(kappa) - 1.0) / (np.sqrt(kappa) + 1.0)
    num_cg = int(np.clip(np.ceil(np.log(1e-7) / np.log(max(rate, 1e-3))), 4, 500))
    return CondensedCorrective(
        ainv_hh=0.5 * (ainv_hh + ainv_hh.T),
        y_h=y[:, h, :],
        r_q=r_q,
        system=ell_matrix(a_mat, np.float64),
        lambda_delta=float(lambda_delta),
        num_cg=num_cg,
    )


def _sampled_y(cc: CondensedCorrective, idx, w, beta_diff):
    # (n, 3): S Y_c b for each coordinate c, idx/w (n, 3) index the handles
    ys = jnp.sum(cc.y_h[:, idx, :] * w[None, :, :, None], axis=2)  # (3, n, M): sample first
    return jnp.einsum("cnm,m->nc", ys, beta_diff)


def gram_cholesky(sample_idx, sample_w, cc: CondensedCorrective, jitter: float = 1e-6):
    """Lower Cholesky factor ``(n, n)`` of ``G = S A^{-1} S^T`` (+ a relative ridge ``jitter``).

    ``sample_idx (n, 3)`` handle-local indices, ``sample_w (n, 3)`` weights.  The ridge keeps
    coincident samples well posed.
    """
    w = jnp.asarray(sample_w, cc.ainv_hh.dtype)
    n, h = w.shape[0], cc.ainv_hh.shape[0]
    s_mat = jnp.zeros((n, h), w.dtype).at[jnp.arange(n)[:, None], sample_idx].add(w)  # S restricted to handles
    g = s_mat @ cc.ainv_hh @ s_mat.T
    return jnp.linalg.cholesky(g + jitter * jnp.trace(g) / n * jnp.eye(n, dtype=g.dtype))


def condensed_residual(beta_diff, offsets, sample_idx, sample_w, cc: CondensedCorrective, chol=None):
    """Residual whose squared norm is ``min E_c`` given the sampled offsets: ``(3 n + M,)``.

    Args:
      beta_diff: ``(M,)`` beta - beta^{t-1}.
      offsets: ``(n, 3)`` deltaP at the n landmark samples (``d = S deltaP``).
      sample_idx: ``(n, 3) int`` handle-local indices of the samples; sample_w: ``(n, 3)`` weights.
      cc: the precomputed :class:`CondensedCorrective`.
      chol: optional :func:`gram_cholesky` of these samples (computed when None).
    """
    w = jnp.asarray(sample_w, cc.ainv_hh.dtype)
    chol = gram_cholesky(sample_idx, w, cc) if chol is None else chol
    rhs = jnp.asarray(offsets) + _sampled_y(cc, sample_idx, w, beta_diff)  # (n, 3)
    r = jax.scipy.linalg.solve_triangular(chol, rhs, lower=True)  # G^{-1/2} in the Cholesky sense
    return jnp.concatenate([r.T.reshape(-1), cc.r_q @ beta_diff])


def _cho_solve(chol, b):
    """``(L L^T)^{-1} b`` by two triangular solves (``jax.scipy.linalg.cho_solve`` is ~100x slower
    under ``vmap`` on CPU)."""
    y = jax.scipy.linalg.solve_triangular(chol, b, lower=True)
    return jax.scipy.linalg.solve_triangular(chol, y, lower=True, trans="T")


def _mu(beta_diff, offsets, sample_idx, w, cc, chol):
    chol = gram_cholesky(sample_idx, w, cc) if chol is None else chol
    rhs = jnp.asarray(offsets) + _sampled_y(cc, sample_idx, w, beta_diff)
    return _cho_solve(chol, rhs)  # (n, 3)


def offsets_at_handles(beta_diff, offsets, sample_idx, sample_w, cc: CondensedCorrective, chol=None):
    """The minimising deltaP at the handle vertices, ``(H, 3)`` (arguments as :func:`condensed_residual`)."""
    w = jnp.asarray(sample_w, cc.ainv_hh.dtype)
    mu = _mu(beta_diff, offsets, sample_idx, w, cc, chol)
    h = cc.ainv_hh.shape[0]
    st_mu = jax.ops.segment_sum((w[..., None] * mu[:, None, :]).reshape(-1, 3), sample_idx.reshape(-1), num_segments=h)
    return cc.ainv_hh @ st_mu - jnp.einsum("chm,m->hc", cc.y_h, beta_diff)


def corrective_field(beta_diff, offsets, sample_idx, sample_w, handles, expression_basis, cc: CondensedCorrective, chol=None):
    """The full minimising field deltaP ``(V, 3)`` (matrix-free CG on ``A``; jit/vmap friendly).

    Args:
      handles: ``(H,) int`` vertex index of each handle; expression_basis: ``(M, V, 3)``;
      others as :func:`condensed_residual`.

    ``A`` is well conditioned (about 1.6 for the uniform Laplacian and lambda_delta = 4), so
    ``cc.num_cg`` fixed CG iterations reach round-off.
    """
    w = jnp.asarray(sample_w, cc.ainv_hh.dtype)
    mu = _mu(beta_diff, offsets, sample_idx, w, cc, chol)
    a_mat = cc.system
    n = a_mat.cols.shape[0]
    vid = jnp.asarray(handles)[sample_idx].reshape(-1)
    rhs = jnp.zeros((n, 3), mu.dtype).at[vid].add((w[..., None] * mu[:, None, :]).reshape(-1, 3))
    if expression_basis.shape[0]:
        bb = jnp.tensordot(beta_diff, jnp.asarray(expression_basis, rhs.dtype), axes=1)
        rhs = rhs - (ell_matvec(a_mat, bb) - cc.lambda_delta * bb)  # K B b = (A - lambda I) B b

    tiny = jnp.finfo(rhs.dtype).tiny

    def body(_, s):
        x, r, p, rs = s
        ap = ell_matvec(a_mat, p)
        alpha = rs / jnp.maximum(jnp.sum(p * ap, axis=0), tiny)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = jnp.sum(r * r, axis=0)
        p = r + rs_new / jnp.maximum(rs, tiny) * p
        return x, r, p, rs_new

    x0 = rhs / cc.lambda_delta
    r0 = rhs - ell_matvec(a_mat, x0)
    x, *_ = jax.lax.fori_loop(0, cc.num_cg, body, (x0, r0, r0, jnp.sum(r0 * r0, axis=0)))
    return x


# ---------------------------------------------------------------- the structured corrective term
#
# Reads the fitting's variables ``v`` (beta (M,), offsets (68, 3), and alpha, t, q, f_s for the
# zero gradient) and data (beta_prev (M,), sample_idx / sample_w (68, 3), corrective
# :class:`CondensedCorrective`, gram_chol (68, 68)) by attribute, as
# :mod:`digitaltwin_jax.energies.landmarks`' structured term does; energies never import fitting.


@dataclasses.dataclass(frozen=True)
class CorrectiveTerm:
    """E_c (eq. 2) with deltaP eliminated: ``(3 * 68 + M,)``; linear in (beta, offsets).

    ``normal_equations`` gives the exact blocks in closed form: with ``C = G^{-1}`` and
    ``Z_c = S Y_c``: H_oo = C (x) I_3, H_o,beta = C Z_c, H_beta,beta = sum_c Z_c^T C Z_c + R_Q^T R_Q.

    Brings the unknown ``offsets`` (deltaP at the landmark samples) into the problem and needs the
    per-topology condensation ``data.corrective`` (``per_topology``).  Its re-linearisation runs in
    two phases around the other terms' (:meth:`recover`, then e.g. the sliding contour, then
    :meth:`recondense`).
    """

    unknowns = ("offsets",)
    per_topology = ("corrective",)

    def __call__(self, v, data):
        return condensed_residual(
            v.beta - data.beta_prev, v.offsets, data.sample_idx, data.sample_w, data.corrective, data.gram_chol
        )

    def normal_equations(self, v, data):
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
        grad = dataclasses.replace(
            v, beta=jnp.einsum("cnm,cn->m", z, cu) + rq.T @ (rq @ b),
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

    def recover(self, v, data, it):
        """First re-linearisation phase: the eliminated field at the handles into ``data.delta_h``."""
        return v, dataclasses.replace(data, delta_h=self.handle_offsets(v, data))

    def recondense(self, v, data, it):
        """Last phase: eliminate again at the (possibly moved) samples: new offsets, Gram factor,
        and ``beta^{t-1}`` (eq. 2) = the current beta."""
        offsets, chol = self.resample(data.delta_h, data.sample_idx, data.sample_w, data.corrective)
        return dataclasses.replace(v, offsets=offsets), dataclasses.replace(data, gram_chol=chol, beta_prev=v.beta)

    @staticmethod
    def handle_offsets(v, data):
        """The eliminated field at the handles ``(H, 3)`` for the current (beta, offsets) (the
        re-linearisation's first half: recover deltaP where the samples may move to)."""
        return offsets_at_handles(
            v.beta - data.beta_prev, v.offsets, data.sample_idx, data.sample_w, data.corrective, data.gram_chol
        )

    @staticmethod
    def resample(delta_h, sample_idx, sample_w, cc: CondensedCorrective):
        """The second half: ``(offsets (n, 3), gram_chol (n, n))`` at new samples ``(n, 3)`` of the
        handle field ``delta_h (H, 3)``."""
        w = jnp.asarray(sample_w)
        offsets = jnp.sum(jnp.asarray(delta_h)[jnp.asarray(sample_idx)] * jnp.asarray(w, delta_h.dtype)[..., None], axis=-2)
        return offsets, gram_cholesky(sample_idx, sample_w, cc)
