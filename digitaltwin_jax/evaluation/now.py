"""NoW-style metric (paper section 4.3; Sanyal et al. 2019): scan-to-mesh distances (scan points ->
predicted mesh) after the 7-landmark similarity and a rigid ICP refinement; median, mean and
standard deviation.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.evaluation.align import ICPConfig, ICPResult, SimilarityTransform, icp, umeyama
from digitaltwin_jax.evaluation.distance import build_triangle_index, point_to_mesh_distance, validate_mesh, validate_points
from digitaltwin_jax.evaluation.inputs import landmarks7, point3

__all__ = ["NoWConfig", "NoWResult", "now_metric"]


@dataclasses.dataclass(frozen=True)
class NoWConfig:
    """NoW-style protocol: landmark similarity, rigid ICP (scan -> mesh), scan-to-mesh distances.

    Attributes:
      landmark_scale: the 7-landmark fit is a similarity (True, as NoW) or rigid.
      icp: rigid refinement settings (None: landmarks only).
      crop_radius: if set, only scan points within this radius of ``scan_center`` are used (NoW
        crops its scans around the nose tip beforehand; its scans are already cropped).
    """

    landmark_scale: bool = True
    icp: ICPConfig | None = ICPConfig(method="point_to_plane", with_scale=False, trim_fraction=0.0)
    crop_radius: float | None = None


@dataclasses.dataclass(frozen=True)
class NoWResult:
    """Scan-to-mesh error statistics (mm).

    Attributes:
      median, mean, std: of ``distances``.
      distances: ``(M,) float64`` distance of each used scan point to the aligned prediction.
      transform: maps prediction coordinates into the scan frame.
      icp: the ICP result (scan -> landmark-aligned prediction), or None.
    """

    median: float
    mean: float
    std: float
    distances: np.ndarray
    transform: SimilarityTransform
    icp: ICPResult | None


def now_metric(
    scan_points,
    pred_vertices,
    pred_faces,
    *,
    scan_landmarks,
    pred_landmarks,
    scan_center=None,
    config: NoWConfig = NoWConfig(),
) -> NoWResult:
    """NoW-style scan-to-mesh error of a predicted mesh.

    Args:
      scan_points: ``(M, 3) float`` ground-truth scan points (e.g. scan vertices), mm.
      pred_vertices: ``(Vp, 3) float``; pred_faces: ``(Fp, 3) int``.
      scan_landmarks, pred_landmarks: ``(7, 3) float`` evaluation landmarks.
      scan_center: ``(3,)`` crop centre for ``config.crop_radius`` (default: mean of the scan
        landmarks).
      config: :class:`NoWConfig`.

    Returns:
      :class:`NoWResult`.
    """
    scan = validate_points(scan_points, "scan_points")
    pv, pf = validate_mesh(pred_vertices, pred_faces, "prediction")
    s_lm = landmarks7(scan_landmarks, "scan_landmarks")
    lm_t = umeyama(landmarks7(pred_landmarks, "pred_landmarks"), s_lm, with_scale=config.landmark_scale)
    if config.crop_radius is not None:
        c = s_lm.mean(axis=0) if scan_center is None else point3(scan_center, "scan_center")
        scan = scan[((scan - c) ** 2).sum(1) <= config.crop_radius**2]
        if scan.shape[0] < 3:
            raise ValueError(f"fewer than 3 scan points within crop_radius {config.crop_radius}")
    aligned = lm_t.apply(pv)
    index = build_triangle_index(aligned, pf)
    transform = lm_t
    result = None
    if config.icp is not None:
        result = icp(scan, index, config=dataclasses.replace(config.icp, with_scale=False))
        # scan -> prediction: apply the inverse to the prediction instead (scan stays fixed)
        transform = result.transform.inverse().compose(lm_t)
        # distances are invariant under moving both by the same rigid map: measure scan' -> aligned
        d = point_to_mesh_distance(result.transform.apply(scan), index)
    else:
        d = point_to_mesh_distance(scan, index)
    return NoWResult(float(np.median(d)), float(d.mean()), float(d.std()), d, transform, result)
