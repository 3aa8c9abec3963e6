"""Pure mesh maths: cotangent Laplacian, DR features (supplementary eq. 5-8), rotations, sampling.

Public names are re-exported here; see each module for the equations it implements.
"""
from digitaltwin_jax.geometry.banded import BandedCholesky, banded_cholesky, solve_block_tridiagonal
from digitaltwin_jax.geometry.dr import (
    FEATURE_DIM,
    DeformationRepresentation,
    DRConfig,
    consistent_axis_angle,
    dr_decode,
    dr_encode,
    features_to_transforms,
    polar_decomposition,
    prepare_dr,
    prepare_dr_decoder,
)
from digitaltwin_jax.geometry.laplacian import (
    DEGENERATE_EPS,
    cotangent_edge_weights,
    cotangent_laplacian,
    cotangent_weights,
    laplacian_apply,
    mass_matrix,
    vertex_areas,
)
from digitaltwin_jax.geometry.mesh import (
    bounding_box_diagonal,
    face_normals,
    flipped_faces,
    one_ring,
    unique_edges,
    vertex_faces,
    vertex_normals,
)
from digitaltwin_jax.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    hat,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_angle,
    quaternion_multiply,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)
from digitaltwin_jax.geometry.sampling import (
    DRSampler,
    Population,
    kmeans_groups,
    make_dr_sampler,
    polar_to_cartesian_weights,
    sample_cpca,
    sample_dr,
    sample_group_members,
    sample_noaug,
    sample_polar_weights,
    sample_population,
)

__all__ = [
    "BandedCholesky", "banded_cholesky", "solve_block_tridiagonal",
    "FEATURE_DIM", "DeformationRepresentation", "DRConfig", "consistent_axis_angle", "dr_decode",
    "dr_encode", "features_to_transforms", "polar_decomposition", "prepare_dr", "prepare_dr_decoder",
    "DEGENERATE_EPS", "cotangent_edge_weights", "cotangent_laplacian", "cotangent_weights",
    "laplacian_apply", "mass_matrix", "vertex_areas",
    "bounding_box_diagonal", "face_normals", "flipped_faces", "one_ring", "unique_edges",
    "vertex_faces", "vertex_normals",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "hat", "matrix_to_axis_angle",
    "matrix_to_quaternion", "quaternion_angle", "quaternion_multiply", "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "DRSampler", "Population", "kmeans_groups", "make_dr_sampler", "polar_to_cartesian_weights",
    "sample_cpca", "sample_dr", "sample_group_members", "sample_noaug", "sample_polar_weights",
    "sample_population",
]
