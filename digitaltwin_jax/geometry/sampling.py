"""Shape augmentation: DR sampling (paper section 3.2) and the ablation's C-PCA / No-Aug (section 4.4).

Population.  The paper augments 482 scanned subjects in 6 groups (gender x ethnicity).  We have no
scans and no labels, so the stand-in population is drawn from the head model's identity space
(coefficients ~ N(0, identity_scale^2), ICT's ``randomize_identity``) and grouped by k-means in
identity-coefficient space (:func:`kmeans_groups`); any other labelling can be passed instead.

DR sampling (paper, following [21]).  Draw ``(r, theta_1 .. theta_{m-1})`` with r ~ U[0.6, 1.3]
and theta ~ U[0, pi/2], convert these polar coordinates to Cartesian weights
``a_1 = r cos t_1, a_k = r sin t_1 .. sin t_{k-1} cos t_k, a_m = r sin t_1 .. sin t_{m-1}``
(so a_k >= 0 and |a|_2 = r; the weights do *not* sum to one, exactly as in the paper), pick m = 5
distinct subjects of one group and decode ``sum_k a_k D_k`` of their DR features (relative to the
mean head).  Decoded shapes are translated so their centroid is the reference's centroid.

C-PCA.  A PCA of the population's vertices; per group, a Gaussian N(mu_g, Sigma_g) over the PCA
coefficients of its members, sampled exactly as ``mu_g + X_g^T z / sqrt(n_g - 1)`` (z ~ N(0, I),
X_g the centred member coefficients), which has covariance Sigma_g without factorising it.

No-Aug.  Resample the population's own shapes.

Groups are drawn with ``group_weights`` (default: proportional to the group sizes).  All sampling is
driven by explicit ``jax.random`` keys and vmapped over samples.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.geometry.dr import DeformationRepresentation, prepare_dr

__all__ = [
    "Population",
    "sample_population",
    "kmeans_groups",
    "polar_to_cartesian_weights",
    "sample_polar_weights",
    "sample_group_members",
    "DRSampler",
    "make_dr_sampler",
    "sample_dr",
    "sample_cpca",
    "sample_noaug",
]

R_RANGE = (0.6, 1.3)
THETA_RANGE = (0.0, 0.5 * math.pi)


@dataclasses.dataclass(frozen=True)
class Population:
    """Subjects with group labels.

    Attributes:
      vertices: ``(N, V, 3) float32`` subject shapes, mm.
      groups: ``(N,) int32`` group label per subject, in ``[0, num_groups)``.
      identity_coeffs: ``(N, K) float32`` identity coefficients (None if not from the model).
      num_groups: number of groups.
    """

    vertices: np.ndarray
    groups: np.ndarray
    identity_coeffs: np.ndarray | None
    num_groups: int

    def group_sizes(self) -> np.ndarray:
        return np.bincount(np.asarray(self.groups), minlength=self.num_groups)


def kmeans_groups(points, num_groups: int, key, *, iterations: int = 50):
    """Lloyd's k-means labels ``(N,) int32`` (k-means++ initialisation; pure JAX, deterministic per key).

    Args:
      points: ``(N, D) float``.
      num_groups: k.
      key: ``jax.random`` key.
      iterations: Lloyd iterations.
    """
    x = jnp.asarray(points, jnp.float32)
    n = x.shape[0]
    if not 1 <= num_groups <= n:
        raise ValueError(f"num_groups must be in [1, {n}], got {num_groups}")
    keys = jax.random.split(key, num_groups)
    centers = [x[jax.random.randint(keys[0], (), 0, n)]]
    for j in range(1, num_groups):  # k-means++
        d2 = jnp.min(jnp.stack([jnp.sum((x - c) ** 2, -1) for c in centers]), 0)
        centers.append(x[jax.random.choice(keys[j], n, p=d2 / jnp.sum(d2))])
    c = jnp.stack(centers)

    def step(c, _):
        lab = jnp.argmin(jnp.sum((x[:, None] - c[None]) ** 2, -1), axis=1)
        one = jax.nn.one_hot(lab, num_groups, dtype=x.dtype)
        cnt = one.sum(0)
        new = (one.T @ x) / jnp.maximum(cnt, 1.0)[:, None]
        return jnp.where(cnt[:, None] > 0, new, c), None

    c, _ = jax.lax.scan(step, c, None, length=iterations)
    return jnp.argmin(jnp.sum((x[:, None] - c[None]) ** 2, -1), axis=1).astype(jnp.int32)


def sample_population(model, key, *, num_subjects: int = 482, num_groups: int = 6,
                      identity_scale: float = 1.0, groups=None) -> Population:
    """Draw a population from the head model's identity space and group it.

    Args:
      model: a :class:`digitaltwin_jax.HeadModel`.
      key: ``jax.random`` key.
      num_subjects: N (paper: 482).
      num_groups: groups for k-means (paper: 6 = 2 genders x 3 ethnicities) when ``groups`` is None.
      identity_scale: standard deviation of the identity coefficients.
      groups: optional ``(N,) int`` labels to use instead of k-means.

    Returns:
      :class:`Population` (numpy arrays).
    """
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    k_coef, k_group = jax.random.split(key)
    basis = np.asarray(model.identity_basis, np.float32)
    coeffs = identity_scale * jax.random.normal(k_coef, (num_subjects, basis.shape[0]), jnp.float32)
    verts = jnp.asarray(model.vertices)[None] + jnp.tensordot(coeffs, jnp.asarray(basis), axes=1)
    if groups is None:
        labels = kmeans_groups(coeffs, num_groups, k_group)
    else:
        labels = jnp.asarray(groups, jnp.int32)
        if labels.shape != (num_subjects,):
            raise ValueError(f"groups must have shape ({num_subjects},), got {labels.shape}")
        if int(labels.min()) < 0:
            raise ValueError("group labels must be >= 0")
        num_groups = int(labels.max()) + 1
    return Population(
        vertices=np.asarray(verts, np.float32),
        groups=np.asarray(labels, np.int32),
        identity_coeffs=np.asarray(coeffs, np.float32),
        num_groups=int(num_groups),
    )


def polar_to_cartesian_weights(r, theta):
    """Cartesian coordinates ``(..., m)`` of the polar point ``(r, theta_1 .. theta_{m-1})``.

    ``a_1 = r cos t_1``, ``a_k = r sin t_1 .. sin t_{k-1} cos t_k``, ``a_m = r sin t_1 .. sin t_{m-1}``.

    Args:
      r: ``(...)`` radius; theta: ``(..., m - 1)`` angles.
    """
    r = jnp.asarray(r)
    theta = jnp.asarray(theta)
    ones = jnp.ones(theta.shape[:-1] + (1,), theta.dtype)
    sin_prod = jnp.cumprod(jnp.concatenate([ones, jnp.sin(theta)], -1), axis=-1)  # (..., m)
    cos_term = jnp.concatenate([jnp.cos(theta), ones], -1)
    return r[..., None] * sin_prod * cos_term


def sample_polar_weights(key, m: int = 5, *, r_range=R_RANGE, theta_range=THETA_RANGE):
    """Paper's interpolation weights ``(m,)``: r ~ U[r_range], theta_k ~ U[theta_range], to Cartesian."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    kr, kt = jax.random.split(key)
    r = jax.random.uniform(kr, (), minval=r_range[0], maxval=r_range[1])
    theta = jax.random.uniform(kt, (m - 1,), minval=theta_range[0], maxval=theta_range[1])
    return polar_to_cartesian_weights(r, theta)


def sample_group_members(key, groups, group, m: int):
    """``m`` distinct subject indices ``(m,) int32`` of ``group`` (uniform; jit/vmap-able).

    The group must have at least m members (checked by the samplers outside jit).
    """
    groups = jnp.asarray(groups)
    score = jax.random.uniform(key, groups.shape) + jnp.where(groups == group, 0.0, -2.0)
    return jax.lax.top_k(score, m)[1].astype(jnp.int32)


def _group_probs(population: Population, group_weights, min_size: int):
    sizes = population.group_sizes()
    if group_weights is None:
        w = sizes.astype(np.float64)
    else:
        w = np.asarray(group_weights, np.float64)
        if w.shape != (population.num_groups,) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(
                f"group_weights must be {population.num_groups} non-negative numbers, got {group_weights}"
            )
    w = np.where(sizes >= min_size, w, 0.0)
    if w.sum() <= 0:
        raise ValueError(f"no group has at least {min_size} members (sizes {sizes.tolist()})")
    return jnp.asarray(w / w.sum(), jnp.float32)


@dataclasses.dataclass(frozen=True)
class DRSampler:
    """Population DR features prepared for sampling (see :func:`make_dr_sampler`).

    Attributes:
      dr: the prepared :class:`DeformationRepresentation` (reference = mean head).
      features: ``(N, V, 9) float32`` DR features of the population.
      groups: ``(N,) int32``; group_probs: ``(G,)`` probabilities of drawing each group.
      m: subjects per sample; centroid: ``(3,)`` reference centroid.
    """

    dr: DeformationRepresentation
    features: jax.Array
    groups: jax.Array
    group_probs: jax.Array
    m: int
    centroid: jax.Array


def make_dr_sampler(population: Population, reference_vertices, faces, *, m: int = 5,
                    group_weights=None, anchor: int = 0, dr: DeformationRepresentation | None = None,
                    encode_batch: int = 32) -> DRSampler:
    """Encode the population's DR features once (relative to ``reference_vertices``)."""
    if dr is None:
        dr = prepare_dr(reference_vertices, faces, anchor=anchor)
    probs = _group_probs(population, group_weights, m)
    verts = np.asarray(population.vertices, np.float32)
    feats = jnp.concatenate(
        [dr.encode(verts[i : i + encode_batch]) for i in range(0, verts.shape[0], encode_batch)]
    )
    return DRSampler(
        dr=dr,
        features=feats,
        groups=jnp.asarray(population.groups),
        group_probs=probs,
        m=int(m),
        centroid=jnp.asarray(np.asarray(reference_vertices, np.float32).mean(0)),
    )


def _dr_draw(key, features, groups, group_probs, m, r_range):
    kg, km, kw = jax.random.split(key, 3)
    g = jax.random.choice(kg, group_probs.shape[0], p=group_probs).astype(jnp.int32)
    members = sample_group_members(km, groups, g, m)
    a = sample_polar_weights(kw, m, r_range=(r_range[0], r_range[1]))
    feat = jnp.tensordot(a.astype(features.dtype), features[members], axes=1)
    return feat, g, members, a


_DR_DRAW = jax.jit(jax.vmap(_dr_draw, in_axes=(0, None, None, None, None, None)), static_argnums=4)


def sample_dr(key, sampler: DRSampler, num: int, *, chunk: int = 64, r_range=R_RANGE):
    """Draw ``num`` DR-augmented shapes.

    ``r_range``: range of the polar radius r of the interpolation weights (paper: U[0.6, 1.3]);
    radii beyond 1.3 extrapolate past the population's span (out-of-distribution test heads).

    Returns:
      dict with ``vertices (num, V, 3) float32``, ``group (num,) int32``, ``members (num, m) int32``
      and ``weights (num, m) float32``.
    """
    if not 0.0 <= float(r_range[0]) <= float(r_range[1]):
        raise ValueError(f"r_range must satisfy 0 <= lo <= hi, got {tuple(r_range)}")
    keys = jax.random.split(key, num)
    draw = _DR_DRAW
    r = jnp.asarray(r_range, jnp.float32)
    out = {"vertices": [], "group": [], "members": [], "weights": []}
    for i in range(0, num, chunk):
        feat, g, mem, a = draw(keys[i : i + chunk], sampler.features, sampler.groups, sampler.group_probs, sampler.m,
                               r)
        v = sampler.dr.decode(feat)
        v = v - v.mean(axis=1, keepdims=True) + sampler.centroid
        out["vertices"].append(np.asarray(v, np.float32))
        out["group"].append(np.asarray(g))
        out["members"].append(np.asarray(mem))
        out["weights"].append(np.asarray(a, np.float32))
    return {k: np.concatenate(x) for k, x in out.items()}


def sample_cpca(key, population: Population, num: int, *, group_weights=None,
                num_components: int | None = None):
    """Categorised-PCA sampling (ablation C-PCA): per-group Gaussians over PCA coefficients.

    Args:
      key: ``jax.random`` key.
      population: :class:`Population`.
      num: number of shapes.
      group_weights: ``(G,)`` group probabilities (default: proportional to group sizes).
      num_components: PCA components kept (default: all, N - 1).

    Returns:
      dict with ``vertices (num, V, 3) float32`` and ``group (num,) int32``.
    """
    x = np.asarray(population.vertices, np.float64)
    n, v, _ = x.shape
    probs = _group_probs(population, group_weights, 2)
    flat = x.reshape(n, -1)
    mean = flat.mean(0)
    _, sv, vt = np.linalg.svd(flat - mean, full_matrices=False)
    k = min(num_components or n - 1, vt.shape[0])
    basis = vt[:k]  # (k, 3V)
    coef = (flat - mean) @ basis.T  # (N, k)
    groups = np.asarray(population.groups)
    g_count = population.num_groups
    max_n = int(population.group_sizes().max())
    # per group: mean and centred member coefficients padded to max_n rows (zeros add nothing)
    mu = np.zeros((g_count, k))
    xc = np.zeros((g_count, max_n, k))
    denom = np.ones(g_count)
    for g in range(g_count):
        cg = coef[groups == g]
        if cg.shape[0] == 0:
            continue
        mu[g] = cg.mean(0)
        xc[g, : cg.shape[0]] = cg - mu[g]
        denom[g] = math.sqrt(max(cg.shape[0] - 1, 1))
    mu, xc, denom = (jnp.asarray(a, jnp.float32) for a in (mu, xc, denom))
    basis_j = jnp.asarray(basis, jnp.float32)
    mean_j = jnp.asarray(mean, jnp.float32)

    @jax.jit
    @jax.vmap
    def draw(kk):
        kg, kz = jax.random.split(kk)
        g = jax.random.choice(kg, probs.shape[0], p=probs).astype(jnp.int32)
        z = jax.random.normal(kz, (max_n,))
        c = mu[g] + z @ xc[g] / denom[g]
        return mean_j + c @ basis_j, g

    verts, g = draw(jax.random.split(key, num))
    return {"vertices": np.asarray(verts, np.float32).reshape(num, v, 3), "group": np.asarray(g)}


def sample_noaug(key, population: Population, num: int, *, group_weights=None):
    """No augmentation: resample the population's shapes (group first, then a member uniformly).

    Returns:
      dict with ``vertices (num, V, 3) float32``, ``group (num,) int32``, ``subject (num,) int32``.
    """
    probs = _group_probs(population, group_weights, 1)
    groups = jnp.asarray(population.groups)

    @jax.jit
    @jax.vmap
    def draw(kk):
        kg, km = jax.random.split(kk)
        g = jax.random.choice(kg, probs.shape[0], p=probs).astype(jnp.int32)
        return sample_group_members(km, groups, g, 1)[0], g

    idx, g = draw(jax.random.split(key, num))
    idx = np.asarray(idx)
    return {"vertices": np.asarray(population.vertices)[idx], "group": np.asarray(g), "subject": idx}
