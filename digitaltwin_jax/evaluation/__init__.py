"""Evaluation suite (paper section 4.3): exact point-to-mesh distances, alignment, ARMSE, NoW-style
metric, error heat maps and ARMSE curves.

Modules: ``distance`` (exact accelerated point-to-mesh, numpy), ``distance_jax`` (differentiable
point-triangle kernel), ``align`` (Umeyama, ICP), ``metrics`` (crop, ARMSE, protocol, NoW),
``heatmap`` (coloured PLY, PNG renders), ``plots`` (ARMSE-versus-d curves).
"""
from digitaltwin_jax.evaluation.align import ICPConfig, ICPResult, SimilarityTransform, icp, umeyama
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
from digitaltwin_jax.evaluation.heatmap import error_colors, render_error_heatmap, write_error_ply, write_ply
from digitaltwin_jax.evaluation.metrics import (
    CROP_TARGETS,
    DEFAULT_RADII,
    Alignment,
    AlignmentConfig,
    ARMSEResult,
    EvaluationConfig,
    EvaluationResult,
    NoWConfig,
    NoWResult,
    align_prediction,
    armse,
    armse_curve,
    crop_mesh,
    evaluate_model_prediction,
    evaluate_reconstruction,
    interocular_distance,
    now_metric,
)
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
    # outputs
    "error_colors",
    "render_error_heatmap",
    "write_error_ply",
    "write_ply",
    "mean_and_ci95",
    "plot_armse_curves",
]
