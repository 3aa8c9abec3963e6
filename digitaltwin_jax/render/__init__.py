"""CPU rendering: z-buffer rasteriser, shading, preview cameras (shared by previews, texture
projection (paper section 3.5) and the synthetic-image engine (section 3.2))."""
from digitaltwin_jax.render.primitives import grid, icosphere, uv_sphere
from digitaltwin_jax.render.rasterize import Fragments, front_facing_det, interpolate, rasterize  # submodule first: the name stays the function
from digitaltwin_jax.render.renderer import DEFAULT_LIGHT_DIR, project_points, render_mesh
from digitaltwin_jax.render.shading import (
    bilinear,
    blinn_phong,
    face_normals,
    lambert,
    sample_texture,
    uv_to_pixel,
    vertex_normals,
)
from digitaltwin_jax.render.views import (
    PREVIEW_YAWS,
    look_at,
    orbit_camera,
    preview_cameras,
    render_previews,
)

__all__ = [
    "Fragments",
    "rasterize",
    "interpolate",
    "front_facing_det",
    "project_points",
    "render_mesh",
    "DEFAULT_LIGHT_DIR",
    "vertex_normals",
    "face_normals",
    "sample_texture",
    "bilinear",
    "uv_to_pixel",
    "lambert",
    "blinn_phong",
    "look_at",
    "orbit_camera",
    "preview_cameras",
    "render_previews",
    "PREVIEW_YAWS",
    "icosphere",
    "uv_sphere",
    "grid",
]
