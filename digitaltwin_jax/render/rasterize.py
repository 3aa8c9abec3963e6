"""The z-buffer rasteriser under its ``render`` name: the implementation and its conventions live in
:mod:`digitaltwin_jax.geometry.rasterize` (the lowest layer, so the head-model build can rasterise
too); this module re-exports it for the callers that import ``digitaltwin_jax.render.rasterize``."""
from digitaltwin_jax.geometry.rasterize import Fragments, front_facing_det, interpolate, rasterize

__all__ = ["Fragments", "rasterize", "interpolate", "front_facing_det"]
