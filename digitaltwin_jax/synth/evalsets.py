"""Evaluation sets of the fidelity benchmark: synthetic renders with known heads, cameras and poses.

Two families, each a :class:`~digitaltwin_jax.synth.dataset.DatasetConfig` (so a set is rendered,
sharded, resumed and re-rendered exactly like a training set, by :func:`make_eval_set`):

* :func:`in_distribution_config` -- set (a): the first shipped regressor's training sampler and scene
  configuration (:data:`SET_A_TRAINING`, frozen: Gaussian identity prior, 256 px, neutral, masked
  eyes, procedural skin) with a seed it never used;
* :func:`out_of_distribution_config` -- set (b): heads the shipped regressor never saw, in photos
  unlike its training renders: DR interpolation of a subject database *extrapolated* beyond the
  paper's radius range (r in [1.0, 1.6] instead of [0.6, 1.3]), smooth per-vertex detail outside the
  100 identity modes (1-3 mm RMS over the face, :func:`~.shapes.smooth_detail`), random expressions,
  eyeballs instead of masked eyes, the texture pipeline's skin bank instead of the procedural
  albedo, yaw up to +-35 degrees, focal lengths equivalent to 24-135 mm on a full-frame camera
  (horizontal field of view 15.2-73.7 degrees), 512 px, stronger blur, sensor noise and a JPEG round
  trip on every image.

Set (b) stands in for real photos only as far as its identity embeddings are as far from the
training renders as real photos' are; the benchmark measures that (Fréchet and Mahalanobis
distances, :mod:`digitaltwin_jax.evaluation.fidelity`).
"""
from __future__ import annotations

import math
from pathlib import Path

from digitaltwin_jax.synth.dataset import DatasetConfig, generate
from digitaltwin_jax.synth.engine import RenderConfig
from digitaltwin_jax.synth.scene import CameraConfig, PostConfig, SceneConfig

__all__ = ["in_distribution_config", "out_of_distribution_config", "full_frame_fov_deg", "make_eval_set",
           "EVAL_SET_KINDS"]

EVAL_SET_KINDS = ("in_distribution", "out_of_distribution")


def full_frame_fov_deg(focal_mm: float) -> float:
    """Horizontal field of view (degrees) of a lens of ``focal_mm`` on a 36 mm wide sensor."""
    if not focal_mm > 0:
        raise ValueError(f"focal_mm must be > 0, got {focal_mm}")
    return math.degrees(2.0 * math.atan(18.0 / float(focal_mm)))


SET_A_TRAINING = {"sampler": "gaussian", "image_size": 256, "resolution": "low", "seed": 101}
"""Set (a)'s configuration, frozen: the training set of the *first* shipped regressor (768 renders of
Gaussian-prior heads, seed 101).  Later regressors train on other data
(:mod:`digitaltwin_jax.regressor.recipe`); set (a) stays this one so that benchmark runs stay
comparable."""


def _training_dataset_entry() -> dict:
    return dict(SET_A_TRAINING)


def in_distribution_config(count: int, seed: int) -> DatasetConfig:
    """Set (a): the first shipped regressor's training distribution (:data:`SET_A_TRAINING`) with a new
    ``seed``.

    Raises:
      ValueError: ``seed`` is that training set's own seed (the images would be its training images).
    """
    tr = _training_dataset_entry()
    if int(seed) == tr["seed"]:
        raise ValueError(f"seed {seed} is the regressor's training seed; choose another")
    return DatasetConfig(count=int(count), seed=int(seed), shard_size=64, sampler=tr["sampler"],
                         resolution=tr["resolution"], scene=SceneConfig(image_size=tr["image_size"]))


def out_of_distribution_config(count: int, seed: int, *, image_size: int = 512) -> DatasetConfig:
    """Set (b): out-of-distribution heads and photos (module docstring)."""
    camera = CameraConfig(max_rotation_deg=15.0, max_yaw_deg=35.0,
                          fov_deg=(full_frame_fov_deg(135.0), full_frame_fov_deg(24.0)))
    post = PostConfig(blur_sigma=(0.3, 1.5), noise_sigma=(0.005, 0.03), jpeg_probability=1.0, jpeg_quality=(40, 90))
    scene = SceneConfig(image_size=int(image_size), expressions=True, camera=camera, post=post)
    return DatasetConfig(count=int(count), seed=int(seed), shard_size=64, sampler="dr", resolution="low",
                         albedo_source="texture-bank", bank_size=24, scene=scene,
                         render=RenderConfig(eyes="eyeballs"), dr_radius=(1.0, 1.6), detail_rms=(1.0, 3.0))


def make_eval_set(root, config: DatasetConfig, *, workers: int = 2, progress: bool = True) -> Path:
    """Render ``config`` into ``root`` (resumable; a finished set is left as it is) and run the front
    end on every image (cached next to the shards, resumable; a cache made by another front-end
    configuration is recomputed, so a benchmark always measures the current front end).  Returns
    ``root``."""
    from digitaltwin_jax.regressor.data import frontend_cache

    root = Path(root)
    generate(root, config, workers=workers, progress=progress, contact_sheet_path="contact_sheet.png")
    frontend_cache(root, progress=progress, recompute=True)
    return root
