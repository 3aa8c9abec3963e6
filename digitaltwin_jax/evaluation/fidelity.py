"""Fidelity statistics: scoring shape sources against ground truth and against each other.

The building blocks of ``benchmarks/bench_fidelity.py`` (issue "fidelity benchmark"), reusable on any
evaluation set:

* :func:`score_heads` -- ARMSE of predicted heads against ground-truth heads with the paper's
  protocol (section 4.3: 7-landmark similarity + ICP with scale, crop radius d around the nose tip,
  mm and % of the outer interocular distance), one row per item;
* :func:`paired_difference` -- mean paired difference of two methods on the same items with its 95%
  Student-t interval (negative = the method is better than the reference);
* :func:`frechet_distance`, :func:`fit_embedding_stats`, :func:`mahalanobis`,
  :func:`nearest_distances` -- how far one set of identity embeddings lies from another (the
  render-to-photo domain gap: a regressor only knows the region it was trained on);
* :func:`shape_distance_matrix`, :func:`retrieval` -- same-person retrieval between reconstructions
  of real photos (no ground truth needed: is the closest other reconstruction one of the same person?);
* :func:`rotation_angle_deg` -- pose error.

Arrays are numpy float64 unless stated; NaN marks items a method could not handle and is skipped
pairwise.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = [
    "RADII",
    "HeadScores",
    "score_heads",
    "PairedDifference",
    "paired_difference",
    "mean_interval",
    "frechet_distance",
    "EmbeddingStats",
    "fit_embedding_stats",
    "mahalanobis",
    "nearest_distances",
    "shape_distance_matrix",
    "RetrievalResult",
    "retrieval",
    "rotation_angle_deg",
]

RADII = (80.0, 95.0, 110.0)


# ----------------------------------------------------------------------------------------- scoring
@dataclasses.dataclass(frozen=True)
class HeadScores:
    """Per-item ARMSE of one method.

    Attributes:
      radii: ``(R,)`` crop radii d (mm).
      armse_mm: ``(N, R) float64`` ARMSE in mm (NaN: no prediction).
      armse_iod: ``(N, R) float64`` the same in % of the ground truth's outer interocular distance.
    """

    radii: tuple
    armse_mm: np.ndarray
    armse_iod: np.ndarray


def score_heads(model, gt_vertices, predictions, *, radii=RADII, config=None, progress: bool = False) -> HeadScores:
    """ARMSE of ``predictions`` against ``gt_vertices`` (both in the model topology).

    Protocol: :func:`digitaltwin_jax.evaluation.evaluate_model_prediction` (7 evaluation landmarks
    of the model -> similarity, point-to-plane ICP with scale, crop both meshes at d around the
    ground-truth nose tip, prediction->truth distances on the model's outer surface only).

    Args:
      model: the :class:`~digitaltwin_jax.model.head_model.HeadModel` of both.
      gt_vertices: ``(N, V, 3)`` ground-truth heads, mm.
      predictions: ``(N, V, 3)`` predicted heads, mm; rows with a NaN are skipped (NaN scores).
      radii: crop radii d (mm).
      config: optional :class:`~digitaltwin_jax.evaluation.protocol.EvaluationConfig` (its radii are
        replaced by ``radii``); default the paper's protocol.

    Returns:
      :class:`HeadScores`.
    """
    from digitaltwin_jax.evaluation.protocol import EvaluationConfig, evaluate_model_prediction

    gt = np.asarray(gt_vertices, np.float64)
    pred = np.asarray(predictions, np.float64)
    if gt.ndim != 3 or gt.shape != pred.shape or gt.shape[1:] != (model.num_vertices, 3):
        raise ValueError(f"gt_vertices and predictions must both be (N, {model.num_vertices}, 3), "
                         f"got {gt.shape} and {pred.shape}")
    radii = tuple(float(r) for r in radii)
    cfg = EvaluationConfig(radii=radii) if config is None else dataclasses.replace(config, radii=radii)
    faces = np.asarray(model.faces)
    lm_idx = np.asarray(model.eval_landmark_indices)
    nose = int(model.nose_tip_index)
    mm = np.full((gt.shape[0], len(radii)), np.nan)
    iod = np.full_like(mm, np.nan)
    items = range(gt.shape[0])
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="ARMSE", leave=False)
    for i in items:
        if not np.all(np.isfinite(pred[i])):
            continue
        r = evaluate_model_prediction(model, pred[i], gt[i], faces, gt[i][lm_idx], gt_center=gt[i][nose], config=cfg)
        mm[i] = [x.armse for x in r.armse]
        iod[i] = [x.armse_percent_iod for x in r.armse]
    return HeadScores(radii, mm, iod)


# -------------------------------------------------------------------------------------- intervals
@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean of ``x - reference`` over the items both handled, with a two-sided t interval.

    Attributes: mean, lo, hi (interval at ``confidence``), n (pairs), confidence.
    """

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float = 0.95

    @property
    def better(self) -> bool:
        """The whole interval lies below zero (the method beats the reference)."""
        return bool(self.hi < 0.0)

    @property
    def worse(self) -> bool:
        """The whole interval lies above zero."""
        return bool(self.lo > 0.0)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"


def mean_interval(x, confidence: float = 0.95) -> PairedDifference:
    """Mean of the finite entries of ``x`` with its Student-t interval (n < 2: infinite interval)."""
    from scipy import stats

    v = np.asarray(x, np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0, confidence)
    m = float(v.mean())
    if n < 2:
        return PairedDifference(m, -math.inf, math.inf, n, confidence)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return PairedDifference(m, m - half, m + half, n, confidence)


def paired_difference(x, reference, confidence: float = 0.95) -> PairedDifference:
    """Paired ``x - reference`` (same items, e.g. ARMSE of a method and of the template head).

    Args:
      x, reference: ``(N,)`` per-item values; pairs with a NaN on either side are dropped.
    """
    a = np.asarray(x, np.float64).ravel()
    b = np.asarray(reference, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and reference must have the same shape, got {a.shape} and {b.shape}")
    return mean_interval(a - b, confidence)


# ------------------------------------------------------------------------------------ embeddings
def _rows(x, name: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"{name} must be (N, D) with N >= 1, got {a.shape}")
    a = a[np.all(np.isfinite(a), axis=1)]
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 finite rows")
    return a


def frechet_distance(x, y) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (as FID, on any features).

    ``|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^{1/2})``; rows with NaN are dropped.

    Args:
      x: ``(N, D)``; y: ``(M, D)`` (N, M >= 2).
    """
    from scipy import linalg

    a, b = _rows(x, "x"), _rows(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sa @ sb)
    root = np.real(root)
    return float(max(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(root), 0.0))


@dataclasses.dataclass(frozen=True)
class EmbeddingStats:
    """A Gaussian model of a set of embeddings (Ledoit-Wolf shrunk covariance).

    Attributes:
      mean: ``(D,)``; precision: ``(D, D)`` inverse covariance; n: rows used; shrinkage: in [0, 1].
    """

    mean: np.ndarray
    precision: np.ndarray
    n: int
    shrinkage: float


def fit_embedding_stats(x) -> EmbeddingStats:
    """Mean and Ledoit-Wolf shrunk covariance (toward ``mu I``) of ``x (N, D)``.

    With fewer samples than dimensions the sample covariance is singular; the shrinkage
    ``delta = min(b^2, d^2) / d^2`` (Ledoit & Wolf 2004: ``d^2 = |S - mu I|_F^2``, ``b^2 = (1/N^2)
    sum_k |x_k x_k^T - S|_F^2``) makes it invertible and well conditioned.
    """
    a = _rows(x, "x")
    n, p = a.shape
    mean = a.mean(0)
    c = a - mean
    s = c.T @ c / n
    mu = np.trace(s) / p
    d2 = float(((s - mu * np.eye(p)) ** 2).sum())
    sq = (c ** 2).sum(1)  # |x_k|^2
    # sum_k |x_k x_k^T - S|_F^2 = sum_k |x_k|^4 - N |S|_F^2
    b2 = float(((sq ** 2).sum() - n * (s ** 2).sum()) / n ** 2)
    delta = 1.0 if d2 <= 0 else min(max(b2, 0.0), d2) / d2
    cov = delta * mu * np.eye(p) + (1.0 - delta) * s
    return EmbeddingStats(mean, np.linalg.inv(cov), int(n), float(delta))


def mahalanobis(stats: EmbeddingStats, x) -> np.ndarray:
    """``(N,)`` Mahalanobis distance of each row of ``x (N, D)`` to ``stats`` (NaN rows give NaN)."""
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[1] != stats.mean.shape[0]:
        raise ValueError(f"x must be (N, {stats.mean.shape[0]}), got {a.shape}")
    d = a - stats.mean
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", d, stats.precision, d), 0.0))


def nearest_distances(x, reference) -> np.ndarray:
    """``(N,)`` Euclidean distance from each row of ``x`` to its nearest row of ``reference``."""
    from scipy.spatial import cKDTree

    a = np.asarray(x, np.float64)
    ref = _rows(reference, "reference")
    out = np.full(a.shape[0], np.nan)
    ok = np.all(np.isfinite(a), axis=1)
    if ok.any():
        out[ok] = cKDTree(ref).query(a[ok])[0]
    return out


# ------------------------------------------------------------------------------------- retrieval
def shape_distance_matrix(heads, mask=None) -> np.ndarray:
    """``(N, N)`` RMS vertex distance (mm) between heads of one topology after a similarity alignment.

    All reconstructions share the model's topology, so correspondences are known: each pair is
    aligned by Umeyama (with scale) over the ``mask`` vertices and the RMS of the remaining
    differences is the distance (symmetrised: the mean of aligning i->j and j->i).

    Args:
      heads: ``(N, V, 3)``; mask: optional ``(V,) bool`` vertices to use (e.g. within 95 mm of the
        nose tip).
    """
    from digitaltwin_jax.evaluation.align import umeyama

    h = np.asarray(heads, np.float64)
    if h.ndim != 3 or h.shape[2] != 3:
        raise ValueError(f"heads must be (N, V, 3), got {h.shape}")
    sel = np.ones(h.shape[1], bool) if mask is None else np.asarray(mask, bool)
    h = h[:, sel]
    n = h.shape[0]
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                t = umeyama(h[i], h[j])
                d[i, j] = np.sqrt(((t.apply(h[i]) - h[j]) ** 2).sum(1).mean())
    return 0.5 * (d + d.T)


@dataclasses.dataclass(frozen=True)
class RetrievalResult:
    """Same-person retrieval over a distance matrix.

    Attributes:
      rank1: fraction of queries (items whose person has another item) whose nearest other item is
        of the same person; rank1_lo, rank1_hi: its 95% Wilson interval.
      chance: the expected rank-1 rate of a random ordering (mean over queries of
        ``(same - 1) / (N - 1)``).
      within_between: mean within-person distance / mean between-person distance (< 1: same-person
        reconstructions are closer to each other than to others).
      num_queries: queries counted; ties: queries whose nearest distance was tied between a same- and
        a different-person item (counted as a half hit).
    """

    rank1: float
    rank1_lo: float
    rank1_hi: float
    chance: float
    within_between: float
    num_queries: int
    ties: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _wilson(k: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    den = 1.0 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, c - h), min(1.0, c + h)


def retrieval(distances, person_ids, *, tie_tol: float = 1e-9) -> RetrievalResult:
    """Rank-1 same-person retrieval and the within/between distance ratio.

    Args:
      distances: ``(N, N)`` symmetric distances (diagonal ignored).
      person_ids: ``(N,) int`` person of each item.
    """
    d = np.asarray(distances, np.float64)
    pid = np.asarray(person_ids)
    n = d.shape[0]
    if d.shape != (n, n) or pid.shape != (n,) or n < 3:
        raise ValueError(f"distances must be (N, N) and person_ids (N,) with N >= 3, got {d.shape}, {pid.shape}")
    off = ~np.eye(n, dtype=bool)
    same = (pid[:, None] == pid[None, :]) & off
    hits, queries, ties, chance = 0.0, 0, 0, 0.0
    for i in range(n):
        if not same[i].any():
            continue
        queries += 1
        row = np.where(off[i], d[i], np.inf)
        best = row.min()
        near = np.abs(row - best) <= tie_tol * max(1.0, abs(best))
        s = same[i] & near
        if s.any() and (near & ~same[i] & off[i]).any():
            ties += 1
            hits += float(s.sum()) / float(near.sum())
        elif s.any():
            hits += 1.0
        chance += same[i].sum() / (n - 1)
    diff = (~same) & off
    wb = float(d[same].mean() / d[diff].mean()) if diff.any() and d[diff].mean() > 0 else math.nan
    rank1 = hits / queries if queries else math.nan
    lo, hi = _wilson(hits, queries)
    return RetrievalResult(rank1, lo, hi, chance / queries if queries else math.nan, wb, queries, ties)


def rotation_angle_deg(r_a, r_b) -> np.ndarray:
    """Angle (degrees) of ``R_a R_b^T`` for ``(..., 3, 3)`` rotations (wraparound-safe: in [0, 180])."""
    a = np.asarray(r_a, np.float64)
    b = np.asarray(r_b, np.float64)
    rel = np.einsum("...ij,...kj->...ik", a, b)
    c = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(c))
