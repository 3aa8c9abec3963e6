"""Where the landmark detector's points lie on the head model (issue 16: why more photos help so
little).

dlib's 68 points follow an annotation convention (the lower edge of the eyebrow, the visible lip
line, ...) that the model's landmark vertices match only approximately, so a fit of the shared
identity to the detected points of several photos converges to a *biased* head, more so the more
photos agree on the bias (docs page "Several photos", Measurements: with the true projections of the
model's landmarks the identity fit gains with every photo; with the detector's points it loses).
The bias is systematic, so it can be measured once on renders whose head, pose and camera are
known and then removed: the offset ``Delta_j`` (head frame, mm) that minimises

    sum_n  s_n^2 || pi(K_n (R_n (p_{n,j} + Delta_j) + t_n)) - d_{n,j} ||^2  +  ridge ||Delta_j||^2

over the photos ``n`` (``p_{n,j}`` the model's landmark ``j`` on the true posed head, ``d_{n,j}`` the
detected point, ``pi`` the perspective division, ``s_n = 100 / eye distance`` the fit's per-photo
scale).  Views at several yaws make all three components observable.  Solved per landmark by
Gauss-Newton (3 unknowns each; closed-form Jacobian).  :func:`~digitaltwin_jax.multiview.fit_views`
takes the result as ``landmark_offsets``.
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.energies.landmarks import eye_distance

__all__ = ["estimate_landmark_offsets", "project"]


def project(points, rotation, translation, K) -> np.ndarray:
    """``(N, L, 2)`` pixels of head-frame ``points (N, L, 3)`` seen by cameras ``rotation (N, 3, 3)``,
    ``translation (N, 3)`` (camera = R p + t), ``K (N, 3, 3)``."""
    h = np.einsum("nij,nlj->nli", np.asarray(K, np.float64),
                  np.einsum("nij,nlj->nli", np.asarray(rotation, np.float64), np.asarray(points, np.float64))
                  + np.asarray(translation, np.float64)[:, None])
    return h[..., :2] / h[..., 2:]


def estimate_landmark_offsets(points, rotation, translation, K, detected, *, iterations: int = 10,
                              ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-landmark offsets of the module docstring.

    Args:
      points: ``(N, L, 3)`` the model's landmarks on each photo's true posed head (head frame, mm).
      rotation, translation, K: ``(N, 3, 3)``, ``(N, 3)``, ``(N, 3, 3)`` each photo's true camera.
      detected: ``(N, L, 2)`` the detector's points (pixels; NaN where missing).
      iterations: Gauss-Newton iterations; ridge: Tikhonov weight on ``Delta_j`` (scaled residual units).

    Returns:
      ``(offsets (L, 3) float64, counts (L,) int, sigma (L,) float64)``: counts = photos that saw
      landmark ``j`` (rows with fewer than 2 are zero, their sigma NaN); sigma = the RMS of the scaled
      residual per coordinate that remains with the offsets (the detector's noise at landmark ``j``, in
      % of the eye distance).

    Raises:
      ValueError: inconsistent shapes.
    """
    p = np.asarray(points, np.float64)
    R, t, Km = (np.asarray(a, np.float64) for a in (rotation, translation, K))
    d = np.asarray(detected, np.float64)
    n, nl = p.shape[:2]
    if p.shape != (n, nl, 3) or d.shape != (n, nl, 2) or R.shape != (n, 3, 3) or t.shape != (n, 3) or Km.shape != (n, 3, 3):
        raise ValueError(f"inconsistent shapes: points {p.shape}, detected {d.shape}, rotation {R.shape}, "
                         f"translation {t.shape}, K {Km.shape}")
    ok = np.all(np.isfinite(d), axis=2)
    if nl == 68:
        eye = np.array([eye_distance(d[i]) if np.isfinite(d[i, [36, 45]]).all() else np.nan for i in range(n)])
    else:
        eye = np.full(n, 100.0)
    s = np.where(np.isfinite(eye) & (eye >= 1.0), 100.0 / np.where(np.isfinite(eye), eye, 1.0), 0.0)
    ok &= (s > 0)[:, None]
    counts = ok.sum(axis=0)
    delta = np.zeros((nl, 3))
    KR = np.einsum("nij,njk->nik", Km, R)  # (N, 3, 3)
    Kt = np.einsum("nij,nj->ni", Km, t)[:, None]  # (N, 1, 3)

    def homogeneous(delta):  # (N, L, 3) K (R (p + delta) + t)
        return np.einsum("nij,nlj->nli", KR, p + delta[None]) + Kt

    for _ in range(int(iterations)):
        h = homogeneous(delta)
        u = h[..., :2] / h[..., 2:]
        r = (u - np.where(ok[..., None], d, 0.0)) * s[:, None, None]  # (N, L, 2)
        # du/dh (N, L, 2, 3), then J = s du/dh K R  (N, L, 2, 3)
        dudh = np.zeros(h.shape[:2] + (2, 3))
        dudh[..., 0, 0] = dudh[..., 1, 1] = 1.0 / h[..., 2]
        dudh[..., :, 2] = -h[..., :2] / h[..., 2:] ** 2
        J = s[:, None, None, None] * np.einsum("nlab,nbc->nlac", dudh, KR)
        J = np.where(ok[..., None, None], J, 0.0)
        r = np.where(ok[..., None], r, 0.0)
        A = np.einsum("nlai,nlaj->lij", J, J) + ridge * np.eye(3)
        A[counts < 2] += np.eye(3)  # unseen landmarks: a solvable block (their rows are zeroed below)
        g = np.einsum("nlai,nla->li", J, r) + ridge * delta
        delta = delta - np.linalg.solve(A, g[..., None])[..., 0]
    delta[counts < 2] = 0.0
    h = homogeneous(delta)
    r = np.where(ok[..., None], (h[..., :2] / h[..., 2:] - np.where(ok[..., None], d, 0.0)) * s[:, None, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt((r ** 2).sum(axis=(0, 2)) / (2.0 * counts))
    sigma[counts < 2] = np.nan
    return delta, counts, sigma
