"""Rigid / similarity alignment for evaluation (paper section 4.3: 7-landmark fit, then ICP).

* :func:`umeyama` -- closed-form least-squares similarity (or rigid) transform between paired
  points (Umeyama 1991, "Least-squares estimation of transformation parameters between two point
  patterns"), optionally weighted.
* :func:`icp` -- iterative closest point of a point set onto a triangle mesh, using exact closest
  points (:mod:`.distance`), point-to-point (Umeyama on the correspondences) or point-to-plane
  (Gauss-Newton on the linearised plane residuals), with or without scale; configured by the frozen
  :class:`ICPConfig`.

All numpy float64; points ``(N, 3)``, ``x -> scale * R x + t``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.evaluation.distance import (
    TriangleIndex,
    build_triangle_index,
    closest_points,
    face_normals,
    validate_points,
)

__all__ = ["SimilarityTransform", "umeyama", "ICPConfig", "ICPResult", "icp"]


@dataclasses.dataclass(frozen=True)
class SimilarityTransform:
    """``x -> scale * rotation @ x + translation``.

    Attributes:
      scale: positive float; rotation: ``(3, 3) float64`` proper rotation; translation: ``(3,) float64``.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> "SimilarityTransform":
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply(self, points) -> np.ndarray:
        """Transform ``(N, 3)`` (or ``(3,)``) points; returns float64 of the same shape."""
        p = np.asarray(points, dtype=np.float64)
        return self.scale * p @ self.rotation.T + self.translation

    def inverse(self) -> "SimilarityTransform":
        r_inv = self.rotation.T
        return SimilarityTransform(1.0 / self.scale, r_inv, -(r_inv @ self.translation) / self.scale)

    def compose(self, first: "SimilarityTransform") -> "SimilarityTransform":
        """The transform applying ``first`` and then ``self``."""
        return SimilarityTransform(
            self.scale * first.scale,
            self.rotation @ first.rotation,
            self.scale * self.rotation @ first.translation + self.translation,
        )

    def matrix(self) -> np.ndarray:
        """``(4, 4)`` homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m


def umeyama(source, target, *, with_scale: bool = True, weights=None) -> SimilarityTransform:
    """Least-squares similarity ``T`` minimising ``sum_i w_i |T(source_i) - target_i|^2``.

    Args:
      source: ``(N, 3) float`` points to move (N >= 3, not all collinear).
      target: ``(N, 3) float`` corresponding points.
      with_scale: estimate the scale (similarity); False gives the best rigid transform.
      weights: optional ``(N,)`` non-negative weights (at least 3 positive).

    Returns:
      :class:`SimilarityTransform` (proper rotation: reflections are excluded as in Umeyama's paper).

    Raises:
      ValueError: mismatched shapes, fewer than 3 points, NaN, negative weights, or a degenerate
        (collinear or coincident) source configuration.
    """
    src = validate_points(source, "source")
    dst = validate_points(target, "target")
    if src.shape != dst.shape:
        raise ValueError(f"source and target must have the same shape, got {src.shape} and {dst.shape}")
    if weights is None:
        w = np.ones(src.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (src.shape[0],):
            raise ValueError(f"weights must have shape ({src.shape[0]},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
    if int((w > 0).sum()) < 3:
        raise ValueError(f"umeyama needs at least 3 points with positive weight, got {int((w > 0).sum())}")
    w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    xs = src - mu_s
    xd = dst - mu_d
    var_s = float(w @ (xs * xs).sum(1))
    sv_src = np.linalg.svd(xs * np.sqrt(w)[:, None], compute_uv=False)
    if var_s <= 0 or sv_src[1] <= 1e-9 * sv_src[0]:
        raise ValueError("source points are coincident or collinear: the rotation is not determined")
    cov = (xd * w[:, None]).T @ xs  # (3, 3) = sum w (dst - mu_d)(src - mu_s)^T
    u, d, vt = np.linalg.svd(cov)
    s = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2] = -1.0
    rot = (u * s) @ vt
    scale = float((d * s).sum() / var_s) if with_scale else 1.0
    if not scale > 0:
        raise ValueError("umeyama found a non-positive scale: source and target are not similar")
    return SimilarityTransform(scale, rot, mu_d - scale * rot @ mu_s)


@dataclasses.dataclass(frozen=True)
class ICPConfig:
    """ICP settings (paper section 4.3: "further refined by iterative closest point [3]").

    Attributes:
      method: ``"point_to_plane"`` (faster convergence on smooth surfaces) or ``"point_to_point"``.
      with_scale: also refine a global scale (similarity ICP).
      max_iterations: iteration cap.
      tolerance: stop when the relative decrease of the mean squared residual falls below this.
      max_correspondence_distance: ignore pairs farther apart than this (mm); None keeps all.
      trim_fraction: each iteration, ignore this fraction of the farthest pairs (robust to partial
        overlap, e.g. a face scan against a full head); 0 keeps all.
      max_points: use at most this many source points (an even, deterministic subsample); None = all.
    """

    method: str = "point_to_plane"
    with_scale: bool = False
    max_iterations: int = 50
    tolerance: float = 1e-6
    max_correspondence_distance: float | None = None
    trim_fraction: float = 0.1
    max_points: int | None = 10000

    def __post_init__(self):
        if self.method not in ("point_to_plane", "point_to_point"):
            raise ValueError(f"method must be 'point_to_plane' or 'point_to_point', got {self.method!r}")
        if not (isinstance(self.max_iterations, int) and self.max_iterations >= 1):
            raise ValueError(f"max_iterations must be a positive int, got {self.max_iterations!r}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.max_correspondence_distance is not None and not self.max_correspondence_distance > 0:
            raise ValueError(f"max_correspondence_distance must be > 0 or None, got {self.max_correspondence_distance}")
        if not 0 <= self.trim_fraction < 1:
            raise ValueError(f"trim_fraction must be in [0, 1), got {self.trim_fraction}")
        if self.max_points is not None and not (isinstance(self.max_points, int) and self.max_points >= 3):
            raise ValueError(f"max_points must be an int >= 3 or None, got {self.max_points!r}")


@dataclasses.dataclass(frozen=True)
class ICPResult:
    """Outcome of :func:`icp`.

    Attributes:
      transform: maps the source points onto the target mesh (includes ``init``).
      rms: root mean square point-to-mesh distance of the kept pairs after the last update (mm).
      iterations: updates performed.
      converged: True if the tolerance was met before ``max_iterations`` (failure is reported, the
        last transform is still returned).
      inlier_fraction: fraction of source points kept by the rejection rules at the end.
    """

    transform: SimilarityTransform
    rms: float
    iterations: int
    converged: bool
    inlier_fraction: float


def _skew_exp(omega: np.ndarray) -> np.ndarray:
    """Rotation matrix exp([omega]_x) (Rodrigues), exact for any angle."""
    theta = float(np.linalg.norm(omega))
    k = np.array([[0.0, -omega[2], omega[1]], [omega[2], 0.0, -omega[0]], [-omega[1], omega[0], 0.0]])
    if theta < 1e-12:
        return np.eye(3) + k
    return np.eye(3) + np.sin(theta) / theta * k + (1 - np.cos(theta)) / theta**2 * (k @ k)


def _inliers(dist: np.ndarray, config: ICPConfig) -> np.ndarray:
    keep = np.ones(dist.shape[0], dtype=bool)
    if config.max_correspondence_distance is not None:
        keep &= dist <= config.max_correspondence_distance
    if config.trim_fraction > 0 and keep.sum() > 3:
        cut = np.quantile(dist[keep], 1.0 - config.trim_fraction)
        keep &= dist <= cut
    return keep


def icp(
    source_points,
    target,
    target_faces=None,
    *,
    config: ICPConfig = ICPConfig(),
    init: SimilarityTransform | None = None,
) -> ICPResult:
    """Align points onto a triangle mesh by ICP with exact closest points.

    Args:
      source_points: ``(N, 3) float`` points to move (e.g. prediction vertices, or scan points).
      target: ``(V, 3) float`` target mesh vertices, or a prebuilt :class:`TriangleIndex`.
      target_faces: ``(F, 3) int`` when ``target`` is a vertex array.
      config: :class:`ICPConfig`.
      init: initial transform (e.g. from :func:`umeyama` on landmarks); identity if None.

    Returns:
      :class:`ICPResult`.

    Raises:
      ValueError: bad shapes/NaN, or fewer than 3 pairs left after rejection.
    """
    src = validate_points(source_points, "source_points")
    index = target if isinstance(target, TriangleIndex) else build_triangle_index(target, target_faces)
    if isinstance(target, TriangleIndex) and target_faces is not None:
        raise TypeError("target_faces must be None when target is a TriangleIndex")
    if config.max_points is not None and src.shape[0] > config.max_points:
        src = src[np.linspace(0, src.shape[0] - 1, config.max_points).round().astype(np.int64)]
    normals = face_normals(index.vertices, index.faces) if config.method == "point_to_plane" else None
    transform = init if init is not None else SimilarityTransform.identity()
    prev = np.inf
    converged = False
    it = 0
    for it in range(1, config.max_iterations + 1):
        x = transform.apply(src)
        cp = closest_points(x, index)
        keep = _inliers(cp.distances, config)
        if keep.sum() < 3:
            raise ValueError(
                f"ICP has {int(keep.sum())} correspondences left after rejection; loosen "
                "max_correspondence_distance / trim_fraction or give a better init"
            )
        mse = float(np.mean(cp.distances[keep] ** 2))
        if prev - mse <= config.tolerance * max(prev, 1e-300) and np.isfinite(prev):
            converged = True
            it -= 1  # this iteration only checked convergence
            break
        prev = mse
        if config.method == "point_to_point":
            transform = umeyama(src[keep], cp.points[keep], with_scale=config.with_scale)
        else:
            transform = _point_to_plane_step(x[keep], cp.points[keep], normals[cp.face_ids[keep]], config.with_scale).compose(transform)
    x = transform.apply(src)
    cp = closest_points(x, index)
    keep = _inliers(cp.distances, config)
    rms = float(np.sqrt(np.mean(cp.distances[keep] ** 2)))
    return ICPResult(transform, rms, it, converged, float(keep.mean()))


def _point_to_plane_step(x, q, n, with_scale: bool) -> SimilarityTransform:
    """One Gauss-Newton step on sum (n . (T(x) - q))^2 with T(x) = (1+s) R(w) (x - c) + c + tau."""
    c = x.mean(axis=0)
    xc = x - c
    cols = [np.cross(xc, n), n]  # d/dw, d/dtau
    if with_scale:
        cols.append((n * xc).sum(1)[:, None])
    a = np.concatenate(cols, axis=1)
    r = (n * (x - q)).sum(1)
    ata = a.T @ a
    ata += 1e-12 * np.trace(ata) * np.eye(ata.shape[0])  # unobservable directions (planar targets)
    sol = -np.linalg.solve(ata, a.T @ r)
    rot = _skew_exp(sol[:3])
    scale = 1.0 + (sol[6] if with_scale else 0.0)
    if not scale > 0:
        scale = 1.0
    # x -> scale R (x - c) + c + tau
    return SimilarityTransform(scale, rot, c + sol[3:6] - scale * rot @ c)
