"""ARMSE as the 3DFAW challenge computes it (paper section 4.3, figure 3).

With ``P`` the prediction and ``G`` the ground truth after alignment
(:mod:`~digitaltwin_jax.evaluation.registration`), and ``P'``, ``G'`` the meshes after cropping
(:mod:`~digitaltwin_jax.evaluation.crop`) the configured *crop target*::

    "both"          crop both meshes (default; the paper: "we discard those vertex v_i where
                    |v_i - v_t| > d", v_t the centre of both models)
    "prediction"    crop the prediction only, as the 3DFAW evaluation code does (its ground truth
                    is a scan of the face region already)
    "ground_truth"  crop the ground truth only, as NoW/ESRC do (for predictions that are face-only)
    "none"          no cropping

Cropping only one side is meant for a counterpart that already covers just the face region: a
full head left uncropped on the other side would count its far vertices as errors.

    RMSE(P -> G) = sqrt(mean_{v in verts(P'), mask(v)} dist(v, G')^2)
    RMSE(G -> P) = sqrt(mean_{v in verts(G')} dist(v, P'')^2)
    ARMSE        = (RMSE(P -> G) + RMSE(G -> P)) / 2

where ``dist`` is the exact point-to-mesh distance, ``mask`` is an optional prediction vertex mask
(by default the head model's ``outer_surface_mask`` for model-topology predictions: internal
surfaces no scanner sees would inflate the error) and ``P''`` is ``P'`` or, with
``mask_target_surface``, ``P'`` without the triangles touching masked-out vertices (the paper removes
eyes, teeth and tongue).  ARMSE is also reported in per cent of the ground truth's outer
interocular distance (``|right eye outer - left eye outer|``), as 3DFAW does.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.evaluation.crop import CROP_TARGETS, crop_mesh
from digitaltwin_jax.evaluation.distance import build_triangle_index, point_to_mesh_distance, validate_mesh
from digitaltwin_jax.evaluation.inputs import point3, vertex_mask

__all__ = ["DEFAULT_RADII", "ARMSEResult", "armse", "armse_curve"]

DEFAULT_RADII = (80.0, 90.0, 100.0, 110.0)  # paper, figure 3


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


@dataclasses.dataclass(frozen=True)
class ARMSEResult:
    """ARMSE at one crop radius (all distances in the ground truth's units, mm).

    Attributes:
      radius: crop radius ``d``.
      armse: ``(rmse_pred_to_gt + rmse_gt_to_pred) / 2``.
      rmse_pred_to_gt, rmse_gt_to_pred: the two directed RMSEs.
      armse_percent_iod: ARMSE in per cent of the outer interocular distance (NaN if not given).
      pred_errors: ``(Vp,) float64`` distance of each used prediction vertex to the ground truth
        surface, NaN for vertices not used (cropped away or masked).
      gt_errors: ``(Vg,) float64`` the same for ground-truth vertices.
    """

    radius: float
    armse: float
    rmse_pred_to_gt: float
    rmse_gt_to_pred: float
    armse_percent_iod: float
    pred_errors: np.ndarray
    gt_errors: np.ndarray

    @property
    def num_pred_points(self) -> int:
        return int(np.isfinite(self.pred_errors).sum())

    @property
    def num_gt_points(self) -> int:
        return int(np.isfinite(self.gt_errors).sum())


def armse_curve(
    pred_vertices,
    pred_faces,
    gt_vertices,
    gt_faces,
    *,
    center,
    radii=DEFAULT_RADII,
    crop_target: str = "both",
    pred_mask=None,
    mask_target_surface: bool = False,
    interocular: float | None = None,
) -> list[ARMSEResult]:
    """ARMSE (3DFAW definition, see the module docstring) at several crop radii.

    The meshes must already be aligned (see :func:`align_prediction`).

    Args:
      pred_vertices: ``(Vp, 3) float``; pred_faces: ``(Fp, 3) int``.
      gt_vertices: ``(Vg, 3) float``; gt_faces: ``(Fg, 3) int``.
      center: ``(3,) float`` crop centre (nose tip, or the mean of the 7 landmarks as for ESRC).
      radii: crop radii ``d`` (any positive values; paper: 80, 90, 100, 110 mm).
      crop_target: ``"both"`` (default), ``"prediction"`` (3DFAW code), ``"ground_truth"``
        (NoW/ESRC) or ``"none"``; see the module docstring.
      pred_mask: ``(Vp,) bool`` prediction vertices used in the prediction->ground-truth direction
        (None: all).
      mask_target_surface: also drop prediction triangles touching masked-out vertices from the
        surface that ground-truth points are measured against.
      interocular: outer interocular distance for the per-cent figure (None: NaN).

    Returns:
      One :class:`ARMSEResult` per radius, in order.
    """
    if crop_target not in CROP_TARGETS:
        raise ValueError(f"crop_target must be one of {CROP_TARGETS}, got {crop_target!r}")
    pv, pf = validate_mesh(pred_vertices, pred_faces, "prediction")
    gv, gf = validate_mesh(gt_vertices, gt_faces, "ground truth")
    c = point3(center, "center")
    mask = vertex_mask(pred_mask, pv.shape[0], "pred_mask")
    radii = tuple(float(r) for r in np.atleast_1d(np.asarray(radii, dtype=np.float64)))
    if not radii or not all(np.isfinite(r) and r > 0 for r in radii):
        raise ValueError(f"radii must be positive finite numbers, got {radii}")
    if interocular is not None and not (np.isfinite(interocular) and interocular > 0):
        raise ValueError(f"interocular must be a positive number or None, got {interocular}")
    crop_pred = crop_target in ("prediction", "both")
    crop_gt = crop_target in ("ground_truth", "both")
    gt_index_full = None if crop_gt else build_triangle_index(gv, gf)
    pred_surface_mask = mask if (mask_target_surface and pred_mask is not None) else None
    pred_index_full = None
    if not crop_pred:
        pred_index_full = build_triangle_index(pv, _surface_faces(pf, pred_surface_mask))
    out = []
    for d in radii:
        if crop_pred:
            p_faces, p_used = crop_mesh(pv, pf, c, d)
            p_index = build_triangle_index(pv, _surface_faces(p_faces, pred_surface_mask))
        else:
            p_used = np.zeros(pv.shape[0], dtype=bool)
            p_used[pf.ravel()] = True
            p_index = pred_index_full
        if crop_gt:
            g_faces, g_used = crop_mesh(gv, gf, c, d)
            g_index = build_triangle_index(gv, g_faces)
        else:
            g_used = np.zeros(gv.shape[0], dtype=bool)
            g_used[gf.ravel()] = True
            g_index = gt_index_full
        p_query = p_used & mask
        if not p_query.any():
            raise ValueError(f"no prediction vertex is both inside radius {d} and in pred_mask")
        pred_err = np.full(pv.shape[0], np.nan)
        gt_err = np.full(gv.shape[0], np.nan)
        pred_err[p_query] = point_to_mesh_distance(pv[p_query], g_index)
        gt_err[g_used] = point_to_mesh_distance(gv[g_used], p_index)
        r_pg = _rms(pred_err[p_query])
        r_gp = _rms(gt_err[g_used])
        a = 0.5 * (r_pg + r_gp)
        pct = 100.0 * a / interocular if interocular is not None else float("nan")
        out.append(ARMSEResult(d, a, r_pg, r_gp, pct, pred_err, gt_err))
    return out


def _surface_faces(faces: np.ndarray, mask) -> np.ndarray:
    if mask is None:
        return faces
    kept = faces[mask[faces].all(axis=1)]
    if kept.shape[0] == 0:
        raise ValueError("pred_mask leaves no prediction triangle in the target surface")
    return kept


def armse(pred_vertices, pred_faces, gt_vertices, gt_faces, *, center, radius: float, **kwargs) -> ARMSEResult:
    """ARMSE at one crop radius; see :func:`armse_curve` for the arguments."""
    return armse_curve(pred_vertices, pred_faces, gt_vertices, gt_faces, center=center, radii=(radius,), **kwargs)[0]
