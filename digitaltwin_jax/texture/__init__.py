"""Texture pipeline (paper section 3.5): projection of the photo into UV space with visibility and
confidence, a texture bank for unseen areas, Poisson blending (Perez 2003) and seam handling."""
from digitaltwin_jax.texture.bank import (
    BankEntry,
    TextureBank,
    default_texture_bank,
    embed_entries,
    load_bank,
    save_bank,
)
from digitaltwin_jax.texture.pipeline import (
    TextureConfig,
    TextureResult,
    add_photo_entry,
    build_texture,
    relight_texture,
    write_confidence,
    write_texture,
)
from digitaltwin_jax.texture.metrics import (
    AlbedoScores,
    RerenderScores,
    SeamScores,
    albedo_scores,
    face_compare_mask,
    psnr,
    rerender_scores,
    seam_scores,
    ssim,
)
from digitaltwin_jax.texture.poisson import PoissonConfig, poisson_blend
from digitaltwin_jax.texture.procedural import SkinLayout, bake_procedural, skin_layout
from digitaltwin_jax.texture.projection import (
    ProjectedTexture,
    ProjectionConfig,
    as_float_image,
    project_texture,
)
from digitaltwin_jax.texture.seams import dilate_texture, seam_pairs
from digitaltwin_jax.texture.skin import SkinParams, sample_skin_params, skin_base_color, skin_base_linear
from digitaltwin_jax.texture.uv import UVSampling, scatter_texels, texel_interpolate, uv_sampling

__all__ = [
    "BankEntry",
    "TextureBank",
    "add_photo_entry",
    "default_texture_bank",
    "embed_entries",
    "load_bank",
    "save_bank",
    "TextureConfig",
    "TextureResult",
    "build_texture",
    "relight_texture",
    "write_confidence",
    "write_texture",
    "SkinLayout",
    "SkinParams",
    "bake_procedural",
    "skin_base_color",
    "skin_base_linear",
    "sample_skin_params",
    "skin_layout",
    "AlbedoScores",
    "RerenderScores",
    "SeamScores",
    "albedo_scores",
    "face_compare_mask",
    "psnr",
    "rerender_scores",
    "seam_scores",
    "ssim",
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
