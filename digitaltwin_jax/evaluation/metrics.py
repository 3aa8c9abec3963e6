"""Reconstruction error metrics (paper section 4.3): ARMSE as the 3DFAW challenge, NoW-style.

**Alignment** (:func:`align_prediction`): a similarity transform from the 7 evaluation landmarks
(right eye outer, right eye inner, left eye inner, left eye outer, subnasale, right and left mouth
corners -- ``HeadModel.eval_landmark_indices`` order) by :func:`~.align.umeyama`, then ICP
(:func:`~.align.icp`) between prediction and ground truth.  The prediction is moved into the ground
truth's frame; everything is reported in the ground truth's units (mm).

**Crop rule** (:func:`crop_mesh`): a mesh cropped at radius ``d`` around a centre keeps exactly the
triangles whose three vertices all lie within ``d`` of the centre (``|v - centre| <= d``); its
points are the vertices referenced by the kept triangles.

**ARMSE** (:func:`armse`): with ``P`` the prediction and ``G`` the ground truth after alignment, and
``P'``, ``G'`` the meshes after cropping the configured *crop target*::

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

**NoW-style** (:func:`now_metric`): scan-to-mesh distances (scan points -> predicted mesh) after the
landmark similarity and a rigid ICP refinement; median, mean and standard deviation.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.evaluation.align import ICPConfig, ICPResult, SimilarityTransform, icp, umeyama
from digitaltwin_jax.evaluation.distance import (
    build_triangle_index,
    point_to_mesh_distance,
    validate_mesh,
    validate_points,
)

__all__ = [
    "CROP_TARGETS",
    "DEFAULT_RADII",
    "crop_mesh",
    "interocular_distance",
    "AlignmentConfig",
    "Alignment",
    "align_prediction",
    "ARMSEResult",
    "armse",
    "armse_curve",
    "EvaluationConfig",
    "EvaluationResult",
    "evaluate_reconstruction",
    "evaluate_model_prediction",
    "NoWConfig",
    "NoWResult",
    "now_metric",
]

CROP_TARGETS = ("prediction", "ground_truth", "both", "none")
DEFAULT_RADII = (80.0, 90.0, 100.0, 110.0)  # paper, figure 3


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def crop_mesh(vertices, faces, center, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop a mesh to a ball: keep the triangles whose three vertices are all within ``radius``.

    Args:
      vertices: ``(V, 3) float``; faces: ``(F, 3) int``.
      center: ``(3,) float`` ball centre; radius: ``d`` (> 0, same units).

    Returns:
      ``(faces (F', 3) int64, vertex_mask (V,) bool)``: the kept triangles (still indexing the
      original ``vertices``) and the vertices they reference.

    Raises:
      ValueError: bad shapes/values, or no triangle inside the ball.
    """
    v = validate_points(vertices, "vertices")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.dtype} {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"faces index vertices out of range [0, {v.shape[0]})")
    c = _point3(center, "center")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number, got {radius}")
    inside = ((v - c) ** 2).sum(1) <= float(radius) ** 2
    kept = f[inside[f].all(axis=1)].astype(np.int64)
    if kept.shape[0] == 0:
        raise ValueError(f"no triangle lies within {radius} of the centre {c.tolist()}")
    mask = np.zeros(v.shape[0], dtype=bool)
    mask[kept.ravel()] = True
    return kept, mask


def _point3(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _landmarks7(x, name: str) -> np.ndarray:
    a = validate_points(x, name)
    if a.shape != (7, 3):
        raise ValueError(
            f"{name} must have shape (7, 3) (eye corners x4, subnasale, mouth corners x2), got {a.shape}"
        )
    return a


def interocular_distance(landmarks) -> float:
    """Outer interocular distance ``|landmarks[0] - landmarks[3]|`` of 7 evaluation landmarks ``(7, 3)``."""
    lm = _landmarks7(landmarks, "landmarks")
    return float(np.linalg.norm(lm[0] - lm[3]))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


# --------------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    """How the prediction is brought onto the ground truth.

    Attributes:
      landmark_scale: the 7-landmark fit is a similarity (True) or rigid (False).
      icp: ICP refinement settings, or None for the landmark fit only.  The default refines the
        scale too (point-to-plane, 10% trimming): a similarity from 7 noisy landmarks is off in scale
        by a few per mille, which rigid ICP cannot undo (0.1-0.35 mm ARMSE on an exact prediction
        with 0.5 mm landmark noise; 0 with scale refinement).
      icp_direction: ``"ground_truth_to_prediction"`` (ground-truth points are matched to the
        prediction's surface, as NoW does; robust when the scan covers less than the prediction) or
        ``"prediction_to_ground_truth"`` (prediction vertices, restricted to the mask, are matched
        to the ground-truth surface).
    """

    landmark_scale: bool = True
    icp: ICPConfig | None = ICPConfig(with_scale=True)
    icp_direction: str = "ground_truth_to_prediction"

    def __post_init__(self):
        if self.icp_direction not in ("ground_truth_to_prediction", "prediction_to_ground_truth"):
            raise ValueError(
                "icp_direction must be 'ground_truth_to_prediction' or 'prediction_to_ground_truth', "
                f"got {self.icp_direction!r}"
            )


@dataclasses.dataclass(frozen=True)
class Alignment:
    """Result of :func:`align_prediction`.

    Attributes:
      transform: maps prediction coordinates into the ground truth frame.
      landmark_transform: the 7-landmark fit alone.
      icp: the ICP result (its transform is in the direction ICP ran), or None.
      vertices: ``(Vp, 3) float64`` the aligned prediction vertices.
    """

    transform: SimilarityTransform
    landmark_transform: SimilarityTransform
    icp: ICPResult | None
    vertices: np.ndarray


def align_prediction(
    pred_vertices,
    pred_faces,
    gt_vertices,
    gt_faces,
    pred_landmarks,
    gt_landmarks,
    *,
    config: AlignmentConfig = AlignmentConfig(),
    pred_mask=None,
) -> Alignment:
    """Landmark similarity, then ICP, moving the prediction onto the ground truth.

    Args:
      pred_vertices: ``(Vp, 3) float``; pred_faces: ``(Fp, 3) int``.
      gt_vertices: ``(Vg, 3) float``; gt_faces: ``(Fg, 3) int``.
      pred_landmarks, gt_landmarks: ``(7, 3) float`` evaluation landmarks of each mesh (for a model
        topology prediction: ``pred_vertices[model.eval_landmark_indices]``).
      config: :class:`AlignmentConfig`.
      pred_mask: optional ``(Vp,) bool`` vertices usable for ICP in the prediction->ground-truth
        direction (and whose triangles form the ICP target surface in the other direction).

    Returns:
      :class:`Alignment`.
    """
    pv, pf = validate_mesh(pred_vertices, pred_faces, "prediction")
    gv, gf = validate_mesh(gt_vertices, gt_faces, "ground truth")
    lm_t = umeyama(
        _landmarks7(pred_landmarks, "pred_landmarks"),
        _landmarks7(gt_landmarks, "gt_landmarks"),
        with_scale=config.landmark_scale,
    )
    mask = _vertex_mask(pred_mask, pv.shape[0], "pred_mask")
    transform = lm_t
    result = None
    if config.icp is not None:
        if config.icp_direction == "prediction_to_ground_truth":
            result = icp(pv[mask], gv, gf, config=config.icp, init=lm_t)
            transform = result.transform
        else:
            faces = pf[mask[pf].all(axis=1)] if pred_mask is not None else pf
            if faces.shape[0] == 0:
                raise ValueError("pred_mask leaves no prediction triangle for ICP")
            aligned = lm_t.apply(pv)
            result = icp(gv, aligned, faces, config=config.icp)
            # result maps gt -> landmark-aligned prediction; invert to move the prediction
            transform = result.transform.inverse().compose(lm_t)
    return Alignment(transform, lm_t, result, transform.apply(pv))


def _vertex_mask(mask, n: int, name: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"{name} must be a bool array of shape ({n},), got {m.dtype} {m.shape}")
    if not m.any():
        raise ValueError(f"{name} selects no vertex")
    return m


# --------------------------------------------------------------------------------------------------
# ARMSE
# --------------------------------------------------------------------------------------------------
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
    c = _point3(center, "center")
    mask = _vertex_mask(pred_mask, pv.shape[0], "pred_mask")
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


# --------------------------------------------------------------------------------------------------
# the full protocol
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The paper's evaluation protocol (section 4.3) with its choices made explicit.

    Attributes:
      alignment: :class:`AlignmentConfig` (7-landmark similarity + ICP).
      radii: crop radii ``d`` in mm (figure 3: 80, 90, 100, 110).
      crop_target: which mesh is cropped (see :func:`armse_curve`); "both" as the paper's text.
      mask_target_surface: see :func:`armse_curve`.
    """

    alignment: AlignmentConfig = AlignmentConfig()
    radii: tuple[float, ...] = DEFAULT_RADII
    crop_target: str = "both"
    mask_target_surface: bool = False

    def __post_init__(self):
        if self.crop_target not in CROP_TARGETS:
            raise ValueError(f"crop_target must be one of {CROP_TARGETS}, got {self.crop_target!r}")


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Result of :func:`evaluate_reconstruction`.

    Attributes:
      alignment: :class:`Alignment` (aligned prediction vertices included).
      center: ``(3,) float64`` crop centre used (ground-truth frame).
      interocular: outer interocular distance of the ground-truth landmarks (mm).
      armse: one :class:`ARMSEResult` per radius.
    """

    alignment: Alignment
    center: np.ndarray
    interocular: float
    armse: list[ARMSEResult]

    def table(self) -> list[dict]:
        """Rows ``{radius, armse_mm, armse_percent_iod, rmse_pred_to_gt, rmse_gt_to_pred}``."""
        return [
            {
                "radius": r.radius,
                "armse_mm": r.armse,
                "armse_percent_iod": r.armse_percent_iod,
                "rmse_pred_to_gt": r.rmse_pred_to_gt,
                "rmse_gt_to_pred": r.rmse_gt_to_pred,
            }
            for r in self.armse
        ]


def evaluate_reconstruction(
    pred_vertices,
    pred_faces,
    gt_vertices,
    gt_faces,
    *,
    pred_landmarks,
    gt_landmarks,
    gt_center=None,
    pred_center=None,
    pred_mask=None,
    config: EvaluationConfig = EvaluationConfig(),
) -> EvaluationResult:
    """Align a predicted mesh to a ground-truth scan and compute ARMSE at every radius.

    Crop centre: ``gt_center`` (ground-truth nose tip) if given; else ``pred_center`` (the
    prediction's nose tip, in prediction coordinates) moved by the alignment; else the mean of the 7
    ground-truth landmarks (the paper's rule for ESRC).

    Args:
      pred_vertices, pred_faces, gt_vertices, gt_faces: the two meshes (mm).
      pred_landmarks, gt_landmarks: ``(7, 3)`` evaluation landmarks.
      gt_center, pred_center: optional ``(3,)`` crop centres (see above).
      pred_mask: optional ``(Vp,) bool`` prediction vertex mask (ICP and prediction->gt direction).
      config: :class:`EvaluationConfig`.

    Returns:
      :class:`EvaluationResult`.
    """
    gt_lm = _landmarks7(gt_landmarks, "gt_landmarks")
    al = align_prediction(
        pred_vertices, pred_faces, gt_vertices, gt_faces, pred_landmarks, gt_lm,
        config=config.alignment, pred_mask=pred_mask,
    )
    if gt_center is not None:
        center = _point3(gt_center, "gt_center")
    elif pred_center is not None:
        center = al.transform.apply(_point3(pred_center, "pred_center"))
    else:
        center = gt_lm.mean(axis=0)
    iod = interocular_distance(gt_lm)
    results = armse_curve(
        al.vertices, pred_faces, gt_vertices, gt_faces,
        center=center, radii=config.radii, crop_target=config.crop_target, pred_mask=pred_mask,
        mask_target_surface=config.mask_target_surface, interocular=iod,
    )
    return EvaluationResult(al, center, iod, results)


def evaluate_model_prediction(
    model,
    pred_vertices,
    gt_vertices,
    gt_faces,
    gt_landmarks,
    *,
    gt_center=None,
    use_outer_surface_mask: bool = True,
    config: EvaluationConfig = EvaluationConfig(),
) -> EvaluationResult:
    """:func:`evaluate_reconstruction` for a prediction with the head model's topology.

    Uses ``model.faces``, ``model.eval_landmark_indices`` for the prediction landmarks,
    ``model.nose_tip_index`` for the crop centre (unless ``gt_center`` is given) and, if
    ``use_outer_surface_mask``, ``model.outer_surface_mask`` as the prediction vertex mask.

    Args:
      model: a :class:`~digitaltwin_jax.model.head_model.HeadModel`.
      pred_vertices: ``(V, 3) float`` predicted vertices in the model topology (mm).
      gt_vertices, gt_faces, gt_landmarks, gt_center, config: as :func:`evaluate_reconstruction`.
    """
    pv = validate_points(pred_vertices, "pred_vertices")
    if pv.shape[0] != model.num_vertices:
        raise ValueError(
            f"pred_vertices has {pv.shape[0]} vertices but the {model.resolution!r} model has "
            f"{model.num_vertices}; pass landmarks explicitly to evaluate_reconstruction instead"
        )
    mask = np.asarray(model.outer_surface_mask, dtype=bool) if use_outer_surface_mask else None
    return evaluate_reconstruction(
        pv, np.asarray(model.faces), gt_vertices, gt_faces,
        pred_landmarks=pv[np.asarray(model.eval_landmark_indices)],
        gt_landmarks=gt_landmarks,
        gt_center=gt_center,
        pred_center=pv[int(model.nose_tip_index)],
        pred_mask=mask,
        config=config,
    )


# --------------------------------------------------------------------------------------------------
# NoW-style
# --------------------------------------------------------------------------------------------------
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
    s_lm = _landmarks7(scan_landmarks, "scan_landmarks")
    lm_t = umeyama(_landmarks7(pred_landmarks, "pred_landmarks"), s_lm, with_scale=config.landmark_scale)
    if config.crop_radius is not None:
        c = s_lm.mean(axis=0) if scan_center is None else _point3(scan_center, "scan_center")
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
