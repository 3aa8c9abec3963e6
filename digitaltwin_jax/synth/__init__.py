"""Synthetic face-image engine (paper section 3.2 "Synthetic Rendering", supplementary 4.4): random
augmented heads rendered under 30 lighting presets, random pose, field of view and background, with
ground truth saved next to every image; the shape regressor's training set.

Modules: :mod:`.scene` (what one image holds and how it is drawn), :mod:`.lighting` (presets),
:mod:`.albedo` (skin maps), :mod:`.backgrounds`, :mod:`.eyes` (openings, masks, eyeballs),
:mod:`.shapes` / :mod:`.population` (shape sources), :mod:`.engine` (one render),
:mod:`.dataset` (sharded, resumable writer), :mod:`.realism` (dlib check), :mod:`.cli`.
"""
from digitaltwin_jax.synth.dataset import DatasetConfig, generate, load_shard
from digitaltwin_jax.synth.engine import RenderConfig, RenderResult, SceneRenderer
from digitaltwin_jax.synth.lighting import PRESET_NAMES, PRESETS
from digitaltwin_jax.synth.realism import realism_check
from digitaltwin_jax.synth.scene import Scene, SceneConfig, sample_scene

__all__ = [
    "DatasetConfig",
    "generate",
    "load_shard",
    "RenderConfig",
    "RenderResult",
    "SceneRenderer",
    "PRESETS",
    "PRESET_NAMES",
    "realism_check",
    "Scene",
    "SceneConfig",
    "sample_scene",
]
