"""Evaluation suite (paper section 4.3): exact point-to-mesh distances, alignment, ARMSE, NoW-style
metric, error heat maps and ARMSE curves.

Modules: ``distance`` (exact accelerated point-to-mesh, numpy), ``distance_jax`` (differentiable
point-triangle kernel), ``align`` (Umeyama, ICP), ``crop`` (the crop rule), ``registration``
(prediction onto ground truth: 7 landmarks, then ICP), ``armse_metric`` (ARMSE as 3DFAW),
``protocol`` (the full evaluation), ``now`` (NoW-style metric), ``inputs`` (their argument checks),
``metrics`` (re-exports of those five for older imports), ``heatmap`` (coloured PLY, PNG renders),
``plots`` (ARMSE-versus-d curves), ``fidelity`` (paired intervals, embedding-domain distances,
same-person retrieval: the fidelity benchmark's statistics), ``photo_sets`` (manifests of real-photo
sets with per-photo licences).
"""
from digitaltwin_jax.evaluation.align import ICPConfig, ICPResult, SimilarityTransform, icp, umeyama
from digitaltwin_jax.evaluation.armse_metric import DEFAULT_RADII, ARMSEResult, armse, armse_curve
from digitaltwin_jax.evaluation.crop import CROP_TARGETS, crop_mesh
from digitaltwin_jax.evaluation.distance import (
    ClosestPoints,
    TriangleIndex,
    build_triangle_index,
    closest_points,
    closest_points_on_triangles,
    degenerate_faces,
    face_normals,
    point_to_mesh_distance,
    remove_degenerate_faces,
    validate_mesh,
)
from digitaltwin_jax.evaluation.distance_jax import (
    closest_point_on_triangle,
    point_mesh_distance_given_faces,
    point_mesh_squared_distance_dense,
    point_triangle_squared_distance,
)
from digitaltwin_jax.evaluation.fidelity import (
    EmbeddingStats,
    HeadScores,
    PairedDifference,
    RetrievalResult,
    fit_embedding_stats,
    frechet_distance,
    mahalanobis,
    mean_interval,
    nearest_distances,
    paired_difference,
    retrieval,
    rotation_angle_deg,
    score_heads,
    shape_distance_matrix,
)
from digitaltwin_jax.evaluation.heatmap import error_colors, render_error_heatmap, write_error_ply, write_ply
from digitaltwin_jax.evaluation.now import NoWConfig, NoWResult, now_metric
from digitaltwin_jax.evaluation.photo_sets import PhotoSet, default_photo_set, load_photo_set
from digitaltwin_jax.evaluation.protocol import (
    EvaluationConfig,
    EvaluationResult,
    evaluate_model_prediction,
    evaluate_reconstruction,
    interocular_distance,
)
from digitaltwin_jax.evaluation.registration import Alignment, AlignmentConfig, align_prediction
from digitaltwin_jax.evaluation.plots import mean_and_ci95, plot_armse_curves

__all__ = [
    # distance
    "ClosestPoints",
    "TriangleIndex",
    "build_triangle_index",
    "closest_points",
    "closest_points_on_triangles",
    "degenerate_faces",
    "face_normals",
    "point_to_mesh_distance",
    "remove_degenerate_faces",
    "validate_mesh",
    # differentiable kernel
    "closest_point_on_triangle",
    "point_mesh_distance_given_faces",
    "point_mesh_squared_distance_dense",
    "point_triangle_squared_distance",
    # alignment
    "ICPConfig",
    "ICPResult",
    "SimilarityTransform",
    "icp",
    "umeyama",
    # metrics
    "CROP_TARGETS",
    "DEFAULT_RADII",
    "Alignment",
    "AlignmentConfig",
    "ARMSEResult",
    "EvaluationConfig",
    "EvaluationResult",
    "NoWConfig",
    "NoWResult",
    "align_prediction",
    "armse",
    "armse_curve",
    "crop_mesh",
    "evaluate_model_prediction",
    "evaluate_reconstruction",
    "interocular_distance",
    "now_metric",
    # fidelity benchmark statistics
    "EmbeddingStats",
    "HeadScores",
    "PairedDifference",
    "RetrievalResult",
    "fit_embedding_stats",
    "frechet_distance",
    "mahalanobis",
    "mean_interval",
    "nearest_distances",
    "paired_difference",
    "retrieval",
    "rotation_angle_deg",
    "score_heads",
    "shape_distance_matrix",
    # photo sets
    "PhotoSet",
    "default_photo_set",
    "load_photo_set",
    # outputs
    "error_colors",
    "render_error_heatmap",
    "write_error_ply",
    "write_ply",
    "mean_and_ci95",
    "plot_armse_curves",
]
