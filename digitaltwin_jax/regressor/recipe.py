"""The shipped regressor's recipe: the data-set configuration it is trained on (paper section 3.2,
with the engine's realism ingredients) and the provenance record written beside its weights.

Training data (:func:`training_data_config`) differs from the first shipped regressor (634 neutral
renders of Gaussian-prior heads, masked eyes, procedural skin) in what makes a render look like a
photo to the face encoder:

* heads from the DR population (``sampler="dr"``, paper: r in [0.6, 1.3]);
* sphere eyeballs instead of black eye openings; the texture pipeline's skin bank;
* random expressions (real photos smile; the target stays the neutral head, recovered exactly by
  subtracting the recorded blendshape offsets, :func:`~digitaltwin_jax.regressor.data.load_synth_dataset`);
* head pose +-15 degrees (paper), fields of view 20-50 degrees;
* camera effects: blur up to 1.2 px, sensor noise up to 3 %, JPEG round trip on 80 % of the images
  at quality 40-95.

The benchmark's sets (:mod:`digitaltwin_jax.synth.evalsets`) use other seeds and other ranges (set
(b): DR r in [1, 1.6], out-of-span detail, yaw +-35 degrees, 24-135 mm lenses), so they stay
held out.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from digitaltwin_jax.synth.dataset import DatasetConfig
from digitaltwin_jax.synth.engine import RenderConfig
from digitaltwin_jax.synth.scene import PostConfig, SceneConfig

__all__ = ["training_data_config", "TRAINING_POST", "code_commit", "provenance"]

TRAINING_POST = PostConfig(blur_sigma=(0.0, 1.2), noise_sigma=(0.0, 0.03), jpeg_probability=0.8,
                           jpeg_quality=(40, 95))


def training_data_config(count: int, seed: int, *, sampler: str = "dr", image_size: int = 256,
                         shard_size: int = 64) -> DatasetConfig:
    """The regressor's training set (module docstring); ``sampler`` ``"cpca"`` / ``"noaug"`` give the
    paper's Fig. 6 ablation populations with every other ingredient unchanged."""
    scene = SceneConfig(image_size=int(image_size), expressions=True, post=TRAINING_POST)
    return DatasetConfig(count=int(count), seed=int(seed), shard_size=int(shard_size), sampler=sampler,
                         resolution="low", albedo_source="texture-bank", bank_size=64, scene=scene,
                         render=RenderConfig(eyes="eyeballs", shading="pixel"))


def code_commit(repo=None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding this package."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "digitaltwin_jax"], cwd=root,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(datasets: list[dict], train: dict, extra: dict | None = None) -> dict:
    """The provenance record (JSON-able): data-set configurations and seeds, training settings, the
    code commit.  ``datasets``: one dict per set with at least ``config`` (``DatasetConfig.to_json()``)."""
    rec = {"datasets": datasets, "train": train, "code": code_commit()}
    rec.update(extra or {})
    json.dumps(rec)  # fail early on anything not JSON-able
    return rec


def synthesize_and_embed(root, config: DatasetConfig, *, workers: int = 2, shards_per_step: int = 1,
                         max_shards: int | None = None, progress: bool = True, log=print) -> dict:
    """Render ``config`` into ``root`` and cache the front end's embeddings, ``shards_per_step``
    shards at a time (so a partial set is always rendered *and* embedded up to its last shard);
    resumable at any point.  ``max_shards`` stops after that many new shards.  Returns the last
    ``generate`` summary plus ``num_with_face``."""
    import time

    from digitaltwin_jax.regressor.data import frontend_cache
    from digitaltwin_jax.synth.dataset import generate, shard_path

    root = Path(root)
    done = 0
    summary: dict = {}
    t0 = time.perf_counter()
    while True:
        missing = sum(1 for k in range(config.num_shards) if not shard_path(root, k).exists())
        step = shards_per_step if max_shards is None else min(shards_per_step, max_shards - done)
        if missing == 0 or step <= 0:
            break
        summary = generate(root, config, workers=workers, progress=progress, max_shards=step,
                           contact_sheet_path=None)
        done += step
        n, found = frontend_cache(root, progress=progress)
        summary["num_with_face"] = int(found)
        log(f"{root}: {n} images on disk and embedded, {found} with a face, "
            f"{summary.get('images_per_second')} img/s rendering, {time.perf_counter() - t0:.0f} s this run", flush=True)
    n, found = frontend_cache(root, progress=progress)
    summary["num_with_face"] = int(found)
    return summary
