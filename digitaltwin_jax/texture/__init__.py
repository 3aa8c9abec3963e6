"""Texture pipeline (paper section 3.5): projection of the photo into UV space with visibility and
confidence, a texture bank for unseen areas, Poisson blending (Perez 2003) and seam handling."""
from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend
from digitaltwin_jax.texture.projection import (
    ProjectedTexture,
    ProjectionConfig,
    as_float_image,
    project_texture,
)
from digitaltwin_jax.texture.seams import dilate_texture, seam_pairs
from digitaltwin_jax.texture.uv import UVSampling, scatter_texels, texel_interpolate, uv_sampling

__all__ = [
    "PoissonConfig",
    "poisson_blend",
    "ProjectedTexture",
    "ProjectionConfig",
    "as_float_image",
    "project_texture",
    "dilate_texture",
    "seam_pairs",
    "UVSampling",
    "scatter_texels",
    "texel_interpolate",
    "uv_sampling",
]
