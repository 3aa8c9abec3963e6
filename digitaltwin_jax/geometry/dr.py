"""Deformation Representation (DR) features: paper section 3.2, supplementary eq. 5-8.

Encode (eq. 5-6).  For every vertex i, the affine map T_i minimising

    sum_{j in N(i)} c_ij |(p_i - p_j) - T_i (p^R_i - p^R_j)|^2  +  w_i |m_i - T_i m^R_i|^2

where the last term is ACAP's normal row: it keeps the fit well posed for planar one-rings.  m_i is
the area-weighted vertex normal scaled to a length, ``m_i = n_i sqrt(|sum_f 2 A_f n_f|)``, so rigid
motions and uniform scalings are reproduced exactly; ``w_i = normal_weight * mean_j c_ij``.
T_i = R_i S_i is split by the polar decomposition (scaled Newton iteration; reflections handled:
det T < 0 gives a proper rotation R and a symmetric S with one negative eigenvalue), log R_i becomes
an axis-angle vector theta_i omega_i (eq. 6) and the feature is
``d_i = [theta_i omega_i (3), S_i - I (6: xx, xy, xz, yy, yz, zz)]``.

Consistent logarithm.  A rotation has the logs ``v + 2 pi k v/|v|`` for every integer k (this also
covers flipping the axis sign).  ``consistent_log=True`` picks k per vertex so that neighbouring
logs agree, as ACAP does: starting from the anchor vertex (its log principal; the global winding of
a rotation field is not determined by the rotations themselves), a breadth-first front assigns every
vertex the candidate closest to the mean of its already-assigned neighbours.  If every principal
angle is below pi/2 this provably gives the principal logs and the loop is skipped.  Rotation fields
that wind beyond pi (a strip bent through 400 degrees) then interpolate naturally: half the
features decode to half the bend.

Weights c_ij.  Cotangent weights of the reference mesh can be negative (obtuse triangles); the
published references differ (uniform weights in one, a positive transform in another).  The default
``weighting="clamped"`` uses ``max(c_ij, 0.01 * mean |c|)`` in both the fit (eq. 5) and the decoder
(eq. 7): positive weights keep every one-ring Gram matrix positive definite and make the decoder an
M-matrix.  ``"cotangent"`` keeps the raw weights (prepare raises if a ring's Gram matrix is then
indefinite: 4 of the 11,248 full-head rings are) and ``"uniform"`` sets c_ij = 1.  Measured round
trips are on the docs page "Geometry"; clamped and raw cotangent agree to 1%, uniform is ~20% worse.

Decode (eq. 7-8).  Minimising eq. 7 over the positions gives exactly the symmetric normal equations

    sum_j c_ij (p_i - p_j) = sum_j c_ij (T_i + T_j) / 2 (p^R_i - p^R_j),

i.e. ``L_c P = b`` with the weighted graph Laplacian ``L_c``; the paper's eq. 8 is this equation
written loosely.  One vertex (``anchor``) is fixed, which makes the reduced system symmetric
positive definite.  It is factorised once per topology (``solver="banded"``: block-tridiagonal
Cholesky after a Cuthill-McKee ordering, pure JAX, see banded.py; or ``"splu"``: scipy SuperLU on
the host through a callback, for very large meshes), and each decode is a right-hand-side assembly
plus two triangular sweeps.  The solve is wrapped in ``jax.lax.custom_linear_solve``, so decoding
is differentiable (forward and reverse) w.r.t. the features, jit-able and vmap-able; a batch of
shapes is solved as one multi-column system.

Round trip.  decode(encode(P)) = P up to translation for rigid motions and uniform scalings; for
non-rigid deformations the per-vertex least squares cannot map every ring edge and eq. 7 averages
neighbours, so the round trip has a small error (docs page "Geometry").

Kernels use the "components first" layout of _mat3.py (vertex axis minor) for CPU speed.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jax.experimental import sparse as jsparse
from scipy.sparse.csgraph import connected_components

from digitaltwin_jax.geometry import _mat3 as m3
from digitaltwin_jax.geometry.banded import banded_cholesky, solve_block_tridiagonal
from digitaltwin_jax.geometry.laplacian import cotangent_edge_weights
from digitaltwin_jax.geometry.mesh import check_faces, check_vertices, one_ring, vertex_faces, vertex_normals_np

__all__ = [
    "FEATURE_DIM",
    "DRConfig",
    "DeformationRepresentation",
    "prepare_dr",
    "prepare_dr_decoder",
    "dr_encode",
    "dr_decode",
    "polar_decomposition",
    "consistent_axis_angle",
    "features_to_transforms",
]

FEATURE_DIM = 9
_WEIGHTINGS = ("clamped", "cotangent", "uniform")
_SOLVERS = ("banded", "splu")


@dataclasses.dataclass(frozen=True)
class DRConfig:
    """Options of the DR feature (supplementary eq. 5-8).

    Attributes:
      weighting: edge weights c_ij of eq. 5 and 7: ``"clamped"`` (reference cotangent weights
        clamped below at 1% of the mean absolute weight; default), ``"cotangent"`` (raw, negative
        ones kept) or ``"uniform"``.
      normal_weight: weight of ACAP's normal row relative to the ring's mean c_ij.
      consistent_log: choose the 2 pi winding / axis sign of log R_i consistently across
        neighbours (module docstring); False gives the principal logs (angles in [0, pi]).
      polar_iterations: scaled Newton iterations of the polar decomposition.
      solver: ``"banded"`` (pure JAX block Cholesky, default) or ``"splu"`` (scipy on the host).
    """

    weighting: str = "clamped"
    normal_weight: float = 1.0
    consistent_log: bool = True
    polar_iterations: int = 8
    solver: str = "banded"

    def __post_init__(self):
        if self.weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {self.weighting!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {self.solver!r}")
        if not self.normal_weight >= 0:
            raise ValueError(f"normal_weight must be >= 0, got {self.normal_weight}")
        if self.polar_iterations < 1:
            raise ValueError("polar_iterations must be >= 1")


# ----------------------------------------------------------------------------------------------
# public per-vertex building blocks (conventional layout)


def polar_decomposition(t, *, iterations: int = 8):
    """Polar decomposition ``T = R S`` with R a proper rotation and S symmetric.

    For ``det T > 0``, R is the orthogonal polar factor (scaled Newton iteration
    ``X <- (g X + X^-T / g) / 2`` with Frobenius scaling; smooth, so gradients stay finite also at
    ``T = R``, where SVD-based gradients are NaN) and S is positive definite.  For ``det T < 0`` (a
    reflection) ``R = Q (I - 2 v v^T)`` with Q the orthogonal polar factor and v the eigenvector of
    the smallest eigenvalue of ``Q^T T``, i.e. ``R = U diag(1, 1, -1) V^T``: S then has exactly one
    negative eigenvalue (the smallest singular direction is flipped, keeping S closest to I).
    A singular T (collapsed neighbourhood) is regularised by ``1e-3 |T|_F`` first.

    Args:
      t: ``(..., 3, 3)`` float.
      iterations: Newton iterations (8 reach double precision for condition numbers up to ~1e5).

    Returns:
      ``(R, S)``, both ``(..., 3, 3)``.
    """
    t = jnp.asarray(t)
    if t.shape[-2:] != (3, 3):
        raise ValueError(f"t must have shape (..., 3, 3), got {t.shape}")
    cf = jnp.moveaxis(t, (-2, -1), (0, 1))
    r, s = m3.polar(cf, iterations)
    return jnp.moveaxis(r, (0, 1), (-2, -1)), jnp.moveaxis(s, (0, 1), (-2, -1))


def features_to_transforms(features):
    """Affine maps ``T_i = exp(log R_i) (I + (S_i - I))`` ``(..., V, 3, 3)`` from ``(..., V, 9)`` features."""
    f = jnp.moveaxis(jnp.asarray(features), -1, 0)
    t = m3.mm(m3.exp_so3(f[:3]), m3.sym_from6(f[3:]) + m3.eye_like(f[0]))
    return jnp.moveaxis(t, (0, 1), (-2, -1))


def _consistent_cf(v, nbr, mask, root, small_angle=1e-4):
    """Components-first core of :func:`consistent_axis_angle`: v ``(3, V)``, nbr / mask ``(K, V)``."""
    n = v.shape[-1]
    vs = jax.lax.stop_gradient(v)
    t2 = m3.dot(vs, vs)
    ths = jnp.sqrt(jnp.where(t2 > 0, t2, 0.0))
    need = jnp.max(ths) >= 0.5 * math.pi
    two_pi = 2.0 * math.pi
    ids = jnp.arange(n)

    def unit(x):
        sq = m3.dot(x, x)
        ok = sq > 1e-30
        return jnp.where(ok, x * jax.lax.rsqrt(jnp.where(ok, sq, 1.0)), 0.0)

    axis_own = unit(vs)
    small = ths < small_angle

    def cond(state):
        _, assigned, it = state
        return need & jnp.any(~assigned) & (it < n)

    def body(state):
        u, assigned, it = state
        nb_ok = assigned[nbr] & mask  # (K, V)
        cnt = jnp.sum(nb_ok, axis=0)
        ubar = jnp.einsum("kv,akv->av", nb_ok.astype(u.dtype), u[:, nbr]) / jnp.maximum(cnt, 1)
        axis = jnp.where(small, unit(ubar), axis_own)
        th = jnp.where(small, 0.0, ths)
        k = jnp.round((m3.dot(ubar, axis) - th) / two_pi)
        u_new = vs + two_pi * k * axis
        frontier = (~assigned) & (cnt > 0)
        # an empty front means a new connected component: start it principal at its smallest angle
        seed = jnp.argmin(jnp.where(assigned, jnp.inf, ths))
        start = (~jnp.any(frontier)) & (ids == seed)
        u = jnp.where(frontier, u_new, jnp.where(start, vs, u))
        return u, assigned | frontier | start, it + 1

    state = (vs, ids == root, jnp.array(0))
    u_final, _, _ = jax.lax.while_loop(cond, body, state)
    # u = v + 2 pi k axis with piecewise-constant k: the gradient is that of v
    return v + jax.lax.stop_gradient(u_final - vs)


def consistent_axis_angle(v, neighbors, mask, root=0, *, small_angle: float = 1e-4):
    """Choose the 2 pi winding (and axis sign) of per-vertex logs consistently across neighbours.

    Args:
      v: ``(V, 3)`` principal axis-angle vectors (angles in [0, pi]).
      neighbors: ``(V, K) int`` padded one-rings; mask: ``(V, K) bool`` real entries
        (see :func:`digitaltwin_jax.geometry.one_ring`).
      root: vertex whose log stays principal; the front starts there.  Other connected components
        start at their smallest rotation.
      small_angle: below this angle a vertex's own axis is undefined and the neighbours' mean axis
        is used (the rotation then changes by at most that angle).

    Returns:
      ``(V, 3)`` logs ``u_i = v_i + 2 pi k_i omega_i`` of the same rotations.  The integers k_i are
      piecewise constant, so gradients flow through ``v`` as for the principal log.
    """
    v = jnp.asarray(v)
    u = _consistent_cf(v.T, jnp.asarray(neighbors).T, jnp.asarray(mask).T, root, small_angle)
    return u.T


# ----------------------------------------------------------------------------------------------
# prepared topology


class _HostSolver:
    """scipy SuperLU factorisation of the reduced SPD system, called through ``jax.pure_callback``."""

    def __init__(self, a):
        self.lu = spla.splu(
            sp.csc_matrix(a), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
            options=dict(SymmetricMode=True),
        )

    def __call__(self, rhs, *, dtype):
        rhs = np.asarray(rhs)
        n, c = rhs.shape[-2:]
        lead = rhs.shape[:-2]
        cols = np.moveaxis(rhs.reshape((-1, n, c)), 0, 1).reshape(n, -1).astype(np.float64)
        # SuperLU's multi-column solve slows down sharply beyond ~12 columns: chunk
        x = np.concatenate([self.lu.solve(cols[:, i : i + 12]) for i in range(0, cols.shape[1], 12)], 1)
        x = np.moveaxis(x.reshape(n, -1, c), 1, 0).reshape(lead + (n, c))
        if dtype == np.float64:
            # callbacks run on a thread where a caller's `jax.enable_x64` context is not active and
            # JAX would canonicalise a float64 result to float32: hand the bits over as uint32 pairs
            return np.ascontiguousarray(x).view(np.uint32).reshape(x.shape + (2,))
        return x.astype(dtype)


@jax.tree_util.register_pytree_node_class
class DeformationRepresentation:
    """A reference mesh prepared for DR encoding and decoding (one factorisation per topology).

    Create with :func:`prepare_dr`.  :meth:`encode` and :meth:`decode` accept one shape or a batch
    (leading axes) and work inside ``jit`` / ``vmap`` / ``grad``.  The object is a pytree (its
    arrays are leaves): pass it *as an argument* to your jitted functions, e.g.
    ``jax.jit(lambda dr, f: dr.decode(f))(dr, features)``; closing over it would embed its arrays
    (tens of MB for the full head) as compile-time constants.

    Attributes:
      reference: ``(V, 3)`` reference vertices P^R (float64 numpy when concrete).
      faces: ``(F, 3) int32``.
      anchor: vertex fixed by :meth:`decode` (and root of the consistent logarithm).
      config: the :class:`DRConfig`.
      arrays: dict of arrays used by the kernels (components-first layouts).
    """

    def __init__(self, reference, faces, anchor, config, arrays, host_solver=None):
        self.reference = reference
        self.faces = faces
        self.anchor = int(anchor)
        self.config = config
        self.arrays = arrays
        self.host_solver = host_solver
        self._device = {}

    def tree_flatten(self):
        keys = tuple(sorted(self.arrays))
        leaves = (self.reference, self.faces) + tuple(self.arrays[k] for k in keys)
        return leaves, (keys, self.anchor, self.config, self.host_solver)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        keys, anchor, config, host = aux
        return cls(leaves[0], leaves[1], anchor, config, dict(zip(keys, leaves[2:])), host)

    def __repr__(self):
        return (
            f"DeformationRepresentation(V={self.num_vertices}, F={self.faces.shape[0]}, "
            f"anchor={self.anchor}, config={self.config})"
        )

    @property
    def num_vertices(self) -> int:
        return int(self.reference.shape[0])

    def _arrays(self, dtype):
        """The kernel arrays with floats in ``dtype`` (device arrays cached per dtype when concrete)."""
        key = jnp.dtype(dtype).name
        concrete = all(isinstance(x, np.ndarray) for x in self.arrays.values())
        if not concrete:  # traced leaves (the object was passed through jit / vmap)
            return {
                k: x.astype(key) if jnp.issubdtype(x.dtype, jnp.floating) else x for k, x in self.arrays.items()
            }
        if key not in self._device:
            with jax.ensure_compile_time_eval():
                self._device[key] = {
                    k: jnp.asarray(x.astype(key) if np.issubdtype(x.dtype, np.floating) else x)
                    for k, x in self.arrays.items()
                }
        return self._device[key]

    def encode(self, vertices):
        """DR features ``(..., V, 9)`` of ``vertices (..., V, 3)`` relative to the reference (eq. 5-6).

        Returns ``[log R_i (3, consistent windings), S_i - I (xx, xy, xz, yy, yz, zz)]`` per vertex,
        in the dtype of ``vertices`` (float32 unless given float64 with x64 enabled).
        """
        v = check_vertices(vertices, batch=True)
        if v.shape[-2] != self.num_vertices:
            raise ValueError(f"vertices must have V = {self.num_vertices} rows, got shape {v.shape}")
        lead = v.shape[:-2]
        flat = v.reshape((-1,) + v.shape[-2:])
        out = _encode_jit(self._arrays(v.dtype), flat, cfg=self.config)
        return out.reshape(lead + out.shape[1:])

    def decode(self, features, anchor_position=None):
        """Vertices ``(..., V, 3)`` from DR features ``(..., V, 9)`` (eq. 7-8, symmetric form).

        Args:
          features: ``(..., V, 9) float``.
          anchor_position: ``(3,)`` or ``(..., 3)`` position of the anchor vertex; default its
            reference position.  (DR features are translation invariant.)
        """
        f = jnp.asarray(features)
        if f.ndim < 2 or f.shape[-2:] != (self.num_vertices, FEATURE_DIM):
            raise ValueError(
                f"features must have shape (..., {self.num_vertices}, {FEATURE_DIM}), got {f.shape}"
            )
        if not jnp.issubdtype(f.dtype, jnp.floating):
            f = f.astype(jnp.float32)
        if anchor_position is None:
            anchor_position = self.reference[self.anchor]
        lead = f.shape[:-2]
        a = jnp.broadcast_to(jnp.asarray(anchor_position, f.dtype), lead + (3,)).reshape(-1, 3)
        flat = f.reshape((-1,) + f.shape[-2:])
        out = _decode_jit(self._arrays(f.dtype), flat, a, host=self.host_solver, cfg=self.config)
        return out.reshape(lead + out.shape[1:])

    __call__ = decode


def _edge_weights(reference, faces, weighting):
    with jax.enable_x64(True):
        edges, w = cotangent_edge_weights(jnp.asarray(reference, jnp.float64), faces)
        w = np.asarray(w, np.float64)
    if weighting == "uniform":
        w = np.ones_like(w)
    elif weighting == "clamped":
        w = np.maximum(w, 0.01 * np.mean(np.abs(w)))
    return edges.astype(np.int64), w


def _scaled_normals_np(v, faces):
    n = vertex_normals_np(v, faces, normalize=False)
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.sqrt(np.maximum(ln, 1e-300))


def prepare_dr(reference_vertices, faces, *, anchor: int = 0, config: DRConfig = DRConfig()):
    """Precompute everything that depends only on the reference mesh and its topology.

    Args:
      reference_vertices: ``(V, 3) float`` reference mesh P^R (the paper uses the mean face).
      faces: ``(F, 3) int``, concrete.
      anchor: vertex index fixed when decoding; also the root of the consistent logarithm.
      config: :class:`DRConfig`.

    Returns:
      :class:`DeformationRepresentation`.

    Raises:
      ValueError: bad shapes, NaN, vertices in no face, a disconnected mesh, or (weighting
        "cotangent") a one-ring whose weighted Gram matrix is not positive definite.
    """
    if not isinstance(config, DRConfig):
        raise TypeError(f"config must be a DRConfig, got {type(config).__name__}")
    ref = np.asarray(check_vertices(reference_vertices, "reference_vertices"), np.float64)
    nv = ref.shape[0]
    f = np.asarray(check_faces(faces, nv), np.int64)
    if not 0 <= int(anchor) < nv:
        raise ValueError(f"anchor must be a vertex index in [0, {nv}), got {anchor}")
    used = np.zeros(nv, bool)
    used[f.ravel()] = True
    if not used.all():
        raise ValueError(f"{int((~used).sum())} vertices belong to no face (first: {int(np.argmin(used))})")
    tri = ref[f]
    if np.any(np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) <= 0):
        raise ValueError("the reference mesh has zero-area (degenerate) faces")
    edges, w = _edge_weights(ref, f, config.weighting)
    lap = sp.coo_matrix(
        (np.concatenate([-w, -w]), (np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]]))),
        shape=(nv, nv),
    ).tocsr()
    if connected_components(lap, directed=False)[0] != 1:
        raise ValueError("the mesh has several connected components; DR decoding needs exactly one")
    nbr, mask = one_ring(f, nv)
    key = edges[:, 0] * nv + edges[:, 1]
    self_idx = np.arange(nv)[:, None]
    pos = np.searchsorted(key, np.minimum(self_idx, nbr) * nv + np.maximum(self_idx, nbr)).clip(0, len(key) - 1)
    c = np.where(mask, w[pos], 0.0)  # (V, K)
    e_ref = np.where(mask[..., None], ref[:, None, :] - ref[nbr], 0.0)  # (V, K, 3)
    m_ref = _scaled_normals_np(ref, f)
    wn = config.normal_weight * np.sum(np.abs(c), 1) / np.maximum(mask.sum(1), 1)
    gram = np.einsum("vk,vka,vkb->vab", c, e_ref, e_ref) + wn[:, None, None] * np.einsum("va,vb->vab", m_ref, m_ref)
    eig = np.linalg.eigvalsh(gram)
    bad = eig[:, 0] <= 1e-9 * np.maximum(eig[:, -1], 1e-300)
    if bad.any():
        raise ValueError(
            f"the weighted one-ring Gram matrix of eq. 5 is not positive definite at {int(bad.sum())} "
            f"vertices (first {int(np.argmax(bad))}); use weighting='clamped' or a larger normal_weight"
        )
    gram_inv = np.linalg.inv(gram)
    vf, vf_mask = vertex_faces(f, nv)
    # reverse slots: for i's ring slot k with neighbour j, the slot of i in j's ring
    rows, slots = np.nonzero(mask)
    key_dir = rows.astype(np.int64) * nv + nbr[rows, slots]  # (i, j) -> slot of j in i's ring
    order = np.argsort(key_dir)
    rev_key = nbr[rows, slots].astype(np.int64) * nv + rows  # look up (j, i)
    pos_rev = order[np.searchsorted(key_dir[order], rev_key)]
    rev = np.zeros_like(nbr)
    rev[rows, slots] = slots[pos_rev]

    lap = lap - sp.diags(np.asarray(lap.sum(axis=1)).ravel())  # positive semi-definite L_c
    free = np.setdiff1d(np.arange(nv), [anchor])
    a_ff = lap[free][:, free].tocsr()
    a_fa = np.asarray(lap[free][:, [anchor]].todense()).ravel()
    coo = a_ff.tocoo()
    arrays = dict(
        nbr=np.ascontiguousarray(nbr.T).astype(np.int32),  # components-first layouts: vertex axis last
        mask=np.ascontiguousarray(mask.T),
        c=np.ascontiguousarray(c.T),
        e_ref=np.ascontiguousarray(e_ref.transpose(2, 1, 0)),  # (3, K, V)
        m_ref=np.ascontiguousarray(m_ref.T),  # (3, V)
        wn=wn,
        gram_inv=np.ascontiguousarray(gram_inv.transpose(1, 2, 0)),  # (3, 3, V)
        faces=f.astype(np.int32),
        vf=np.ascontiguousarray(vf.T),
        vf_mask=np.ascontiguousarray(vf_mask.T),
        free=free.astype(np.int32),
        anchor=np.asarray(anchor, np.int32),
        a_fa=a_fa,
        w_ref=np.ascontiguousarray((c[..., None] * e_ref).transpose(2, 1, 0)),  # (3, K, V)
        g_ref=np.ascontiguousarray(np.einsum("vk,vka->av", c, e_ref)),  # (3, V)
        rev_flat=np.ascontiguousarray((rev * nv + nbr).T).reshape(-1).astype(np.int32),
        mask_f=np.ascontiguousarray(mask.T).astype(np.float64),
        a_data=coo.data,
        a_idx=np.stack([coo.row, coo.col], 1).astype(np.int32),
    )
    host = None
    if config.solver == "banded":
        chol = banded_cholesky(a_ff)
        arrays.update(
            perm=chol.perm.astype(np.int32),
            inv_diag=chol.inv_diag,
            inv_diag_t=np.ascontiguousarray(chol.inv_diag.transpose(0, 2, 1)),
            sub=chol.sub,
            sub_next_t=np.ascontiguousarray(
                np.concatenate([chol.sub[1:], np.zeros_like(chol.sub[:1])]).transpose(0, 2, 1)
            ),
        )
    else:
        host = _HostSolver(a_ff)
    return DeformationRepresentation(ref, f.astype(np.int32), int(anchor), config, arrays, host)


prepare_dr_decoder = prepare_dr


# ----------------------------------------------------------------------------------------------
# kernels


def _scaled_normals(p, a):
    """``(3, V)`` vertex normals scaled to sqrt(|sum of face cross products|) (components first)."""
    f = a["faces"]
    p0, p1, p2 = p[:, f[:, 0]], p[:, f[:, 1]], p[:, f[:, 2]]
    fn = m3.cross(p1 - p0, p2 - p0)  # (3, F)
    n = jnp.einsum("kv,akv->av", a["vf_mask"].astype(p.dtype), fn[:, a["vf"]])  # (3, V)
    sq = m3.dot(n, n)
    ok = sq > 1e-30
    return jnp.where(ok, n * jnp.where(ok, sq, 1.0) ** (-0.25), 0.0)


def _encode_one(a, vertices, cfg):
    p = vertices.T  # (3, V)
    e = p[:, None, :] - p[:, a["nbr"]]  # (3, K, V)
    h = jnp.einsum("kv,akv,bkv->abv", a["c"], e, a["e_ref"])  # (3, 3, V)
    m = _scaled_normals(p, a)
    h = h + a["wn"] * m[:, None] * a["m_ref"][None, :]
    t = m3.mm(h, a["gram_inv"])
    r, s = m3.polar(t, cfg.polar_iterations)
    logr = m3.log_so3(r)
    if cfg.consistent_log:
        logr = _consistent_cf(logr, a["nbr"], a["mask"], a["anchor"])
    s6 = m3.sym_to6(s - m3.eye_like(s[0, 0]))
    return jnp.concatenate([logr, s6], axis=0).T  # (V, 9)


@functools.partial(jax.jit, static_argnames=("cfg",))
def _encode_jit(a, vertices, *, cfg):
    return jax.vmap(lambda v: _encode_one(a, v, cfg))(vertices)


def _rhs_one(a, features):
    """``b`` of eq. 7-8, ``(3, V)``: ``b_i = sum_j c_ij (T_i + T_j) / 2 e_ij^R``.

    Split as ``1/2 T_i g_i + 1/2 sum_j T_j (c_ij e_ij^R)`` with ``g_i = sum_j c_ij e_ij^R``; the
    second sum is evaluated at the source vertex j (``y = T_j c_ji e_ji^R`` for each of j's ring
    slots) and then gathered through the reverse-slot index, so 3 instead of 9 numbers are gathered
    per directed edge.
    """
    fc = features.T  # (9, V)
    t = m3.mm(m3.exp_so3(fc[:3]), m3.sym_from6(fc[3:]) + m3.eye_like(fc[0]))  # (3, 3, V)
    w = a["w_ref"]  # (3, K, V): c_ji (p_j - p_i) for j's ring slot k
    y = jnp.stack([t[r, 0][None] * w[0] + t[r, 1][None] * w[1] + t[r, 2][None] * w[2] for r in range(3)])
    k, v = w.shape[1], w.shape[2]
    gathered = jnp.take(y.reshape(3, k * v), a["rev_flat"], axis=1).reshape(3, k, v)
    return 0.5 * (m3.mv(t, a["g_ref"]) - jnp.einsum("kv,akv->av", a["mask_f"], gathered))


@functools.partial(jax.jit, static_argnames=("host", "cfg"))
def _decode_jit(a, features, anchor_position, *, host, cfg):
    dtype = features.dtype
    b = jax.lax.map(lambda f: _rhs_one(a, f), features, batch_size=8)  # (B, 3, V)
    free = a["free"]
    rhs = b[:, :, free] - a["a_fa"][None, None, :] * anchor_position[:, :, None]  # (B, 3, n)
    nb_, _, n = rhs.shape
    cols = jnp.transpose(rhs, (2, 0, 1)).reshape(n, nb_ * 3)  # (n, 3B)
    a_ff = jsparse.BCOO((a["a_data"], a["a_idx"]), shape=(n, n))

    def matvec(x):
        return a_ff @ x

    if host is None:
        def solve(_, y):
            return solve_block_tridiagonal(a["perm"], a["inv_diag"], a["sub"], y, a["inv_diag_t"], a["sub_next_t"])
    else:

        def solve(_, y):
            fn = functools.partial(host, dtype=np.dtype(y.dtype))
            if y.dtype == jnp.float64:
                bits = jax.pure_callback(
                    fn, jax.ShapeDtypeStruct(y.shape + (2,), jnp.uint32), y, vmap_method="broadcast_all"
                )
                return jax.lax.bitcast_convert_type(bits, jnp.float64)
            return jax.pure_callback(fn, jax.ShapeDtypeStruct(y.shape, y.dtype), y, vmap_method="broadcast_all")

    x = jax.lax.custom_linear_solve(matvec, cols, solve, symmetric=True)  # (n, 3B)
    x = jnp.transpose(x.reshape(n, nb_, 3), (1, 0, 2))  # (B, n, 3)
    out = jnp.zeros(features.shape[:-1] + (3,), dtype)
    return out.at[:, free].set(x).at[:, a["anchor"]].set(anchor_position)


# ----------------------------------------------------------------------------------------------
# functional API


def dr_encode(vertices, reference_vertices, faces, *, anchor: int = 0, config: DRConfig = DRConfig()):
    """DR features ``(..., V, 9)`` of ``vertices`` w.r.t. ``reference_vertices`` (eq. 5-6).

    Convenience wrapper that prepares the reference on every call; use :func:`prepare_dr` for many
    shapes.

    Args:
      vertices: ``(..., V, 3) float`` deformed mesh(es) with the reference's topology.
      reference_vertices: ``(V, 3) float``.
      faces: ``(F, 3) int`` (concrete).
      anchor: root vertex of the consistent logarithm (keep it equal to the decoder's anchor).
      config: :class:`DRConfig`.

    Returns:
      ``(..., V, 9)``: ``[log R_i (axis-angle, consistent windings), S_i - I (xx, xy, xz, yy, yz, zz)]``.
    """
    return prepare_dr(reference_vertices, faces, anchor=anchor, config=config).encode(vertices)


def dr_decode(features, reference_vertices, faces, anchor: int = 0, *, anchor_position=None,
              config: DRConfig = DRConfig()):
    """Vertices ``(..., V, 3)`` from DR features (eq. 7-8); the anchor vertex is fixed.

    Args:
      features: ``(..., V, 9) float``.
      reference_vertices: ``(V, 3) float``.
      faces: ``(F, 3) int`` (concrete).
      anchor: index of the fixed vertex.
      anchor_position: its position ``(3,)``; default its reference position.
      config: :class:`DRConfig`.
    """
    dr = prepare_dr(reference_vertices, faces, anchor=anchor, config=config)
    return dr.decode(features, anchor_position=anchor_position)
