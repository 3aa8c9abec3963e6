"""The 68 iBUG points from MediaPipe's 468 Face Mesh points: a mapping learned on renders (issue 28).

Each of the 68 points is an affine combination of ``K`` mesh points (weights summing to one, so the
mapping commutes with translation, rotation and scale of the photo), and the weights may vary linearly
with a yaw feature of the mesh (how far the nose tip sits from the eyes' midline, in eye distances):

    p68[j] = sum_k (a[j, k] + yaw * b[j, k]) * dense[idx[j, k]],   sum_k a[j, k] = 1, sum_k b[j, k] = 0

The weights are fitted by least squares (each sample normalised by its outer-eye-corner distance, a
small ridge toward equal weights) on synthetic renders of this project's head model with random
identity, expression and pose, whose 68 landmark vertices are projected exactly
(``experiments/dense68_data.py`` renders them, ``experiments/dense68_fit.py`` fits and measures):
so the targets are the points the fitting's landmark term projects, not another detector's output,
and no non-commercial model or data set is involved (ICT-FaceKit model: MIT; MediaPipe models:
Apache-2.0).  The learned file is ``digitaltwin_jax/assets/dense_to_68.npz`` (this project's, MIT).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import numpy as np

__all__ = ["Dense68", "yaw_feature", "fit_dense68", "DENSE68_FILE"]

DENSE68_FILE = "dense_to_68.npz"


def yaw_feature(dense) -> np.ndarray:
    """``(...)`` signed offset of the nose tip (mesh point 1) from the midpoint of the outer eye corners
    (33, 263), along the eye line, in units of the eye-corner distance (0 for a frontal face)."""
    p = np.asarray(dense, dtype=np.float64)[..., :2]
    a, b = p[..., 33, :], p[..., 263, :]
    e = b - a
    d2 = np.maximum((e * e).sum(-1), 1e-12)
    return ((p[..., 1, :] - (a + b) / 2) * e).sum(-1) / d2


@dataclass(frozen=True)
class Dense68:
    """``mapping(dense (468, 2) or (N, 468, 2)) -> (68, 2) / (N, 68, 2) float32``.

    Attributes:
      idx: ``(68, K) int`` mesh point indices of each iBUG point.
      a: ``(68, K) float64`` base weights (rows sum to 1).
      b: ``(68, K) float64`` yaw slopes (rows sum to 0; zeros for a pose-independent mapping).
    """

    idx: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def __post_init__(self):
        idx, a, b = np.asarray(self.idx), np.asarray(self.a, np.float64), np.asarray(self.b, np.float64)
        if idx.ndim != 2 or idx.shape[0] != 68 or a.shape != idx.shape or b.shape != idx.shape:
            raise ValueError(f"idx, a, b must all be (68, K); got {idx.shape}, {a.shape}, {b.shape}")
        if idx.min() < 0 or idx.max() >= 468:
            raise ValueError("idx must index the 468 mesh points")
        if not (np.allclose(a.sum(1), 1.0, atol=1e-6) and np.allclose(b.sum(1), 0.0, atol=1e-6)):
            raise ValueError("each row of a must sum to 1 and each row of b to 0")

    @classmethod
    def load(cls, path=None) -> "Dense68":
        """The shipped mapping (or the npz file at ``path``)."""
        f = files("digitaltwin_jax") / "assets" / DENSE68_FILE if path is None else path
        with np.load(str(f)) as z:
            return cls(z["idx"], z["a"], z["b"])

    def save(self, path) -> None:
        np.savez_compressed(path, idx=np.asarray(self.idx, np.int16), a=self.a, b=self.b)

    def __call__(self, dense) -> np.ndarray:
        p = np.asarray(dense, dtype=np.float64)[..., :2]
        if p.shape[-2:] != (468, 2):
            raise ValueError(f"dense must have shape (..., 468, 2|3); got {np.shape(dense)}")
        if not np.all(np.isfinite(p)):
            raise ValueError("dense contains NaN or infinity")
        yaw = yaw_feature(p)[..., None, None]
        w = self.a + yaw * self.b  # (..., 68, K)
        return (w[..., None] * p[..., self.idx, :]).sum(-2).astype(np.float32)


def _normalise(p, ref):
    """Similarity transforms (scale, rotation, translation) taking each ``p[n]`` closest to ``ref``."""
    mu = p.mean(1, keepdims=True)
    q = p - mu
    r = ref - ref.mean(0)
    out = np.empty_like(p)
    for n in range(len(p)):
        u, s, vt = np.linalg.svd(q[n].T @ r)
        R = u @ vt
        sc = s.sum() / (q[n] ** 2).sum()
        out[n] = sc * q[n] @ R
    return out, mu


def fit_dense68(dense, truth, *, k: int = 8, yaw: bool = True, ridge: float = 1e-3, weights=None,
                idx=None) -> Dense68:
    """Learn a :class:`Dense68` from samples.

    Args:
      dense: ``(N, 468, 2)`` mesh points of N faces.
      truth: ``(N, 68, 2)`` their true 68 points (same pixels).
      k: mesh points per iBUG point (the nearest ones to it in the mean normalised face).
      yaw: also fit the yaw slopes ``b`` (else zeros).
      ridge: weight of the pull toward equal weights (in the eye-distance-normalised units).
      weights: optional ``(N,)`` sample weights.
      idx: optional ``(68, k)`` mesh indices to use instead of the nearest ones.

    Returns:
      the fitted :class:`Dense68`.
    """
    P = np.asarray(dense, np.float64)[..., :2]
    T = np.asarray(truth, np.float64)
    n = len(P)
    if P.shape != (n, 468, 2) or T.shape != (n, 68, 2) or n < 2:
        raise ValueError(f"need (N, 468, 2) and (N, 68, 2) with N >= 2; got {P.shape}, {T.shape}")
    sw = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    W = np.linalg.norm(T[:, 36] - T[:, 45], axis=1)
    # neighbours: in the mean face after similarity normalisation of the mesh
    both = np.concatenate([P, T], axis=1)
    ref = P[0]
    for _ in range(3):
        nb, _ = _normalise(both[:, :468], ref)
        ref = nb.mean(0)
    # apply the same per-sample similarity to the targets: refit on both sets at once
    mu = P.mean(1, keepdims=True)
    Tn = np.empty_like(T)
    Pn = np.empty_like(P)
    r = ref - ref.mean(0)
    for i in range(n):
        q = P[i] - mu[i]
        u, s, vt = np.linalg.svd(q.T @ r)
        R = u @ vt
        sc = s.sum() / (q**2).sum()
        Pn[i] = sc * q @ R
        Tn[i] = sc * (T[i] - mu[i]) @ R
    mP, mT = Pn.mean(0), Tn.mean(0)
    if idx is None:
        idx = np.argsort(np.linalg.norm(mT[:, None] - mP[None], axis=-1), axis=1)[:, :k]
    idx = np.asarray(idx)
    k = idx.shape[1]
    f = yaw_feature(P)
    A = np.zeros((68, k))
    B = np.zeros((68, k))
    for j in range(68):
        X = P[:, idx[j]] / W[:, None, None]  # (n, k, 2)
        y = T[:, j] / W[:, None]  # (n, 2)
        cols = [X] + ([X * f[:, None, None]] if yaw else [])
        M = np.concatenate(cols, axis=1)  # (n, m, 2), m = k or 2k
        m = M.shape[1]
        G = np.einsum("nkd,nld,n->kl", M, M, sw) + ridge * np.eye(m)
        h = np.einsum("nkd,nd,n->k", M, y, sw) + ridge * np.concatenate([np.full(k, 1.0 / k), np.zeros(m - k)])
        C = np.zeros((2 if yaw else 1, m))
        C[0, :k] = 1.0
        if yaw:
            C[1, k:] = 1.0
        rhs = np.array([1.0, 0.0][: len(C)])
        K = np.block([[2 * G, C.T], [C, np.zeros((len(C), len(C)))]])
        sol = np.linalg.solve(K, np.concatenate([2 * h, rhs]))
        A[j] = sol[:k]
        if yaw:
            B[j] = sol[k:m]
    return Dense68(idx, A, B)
