"""``digitaltwin synth ... --ray``: render a synthetic set's shards on Ray actors (paper section 3.2).

The driver runs :func:`digitaltwin_jax.synth.dataset.generate` as on one machine (manifest, albedo
bank, ambient occlusion and population written once into the output folder, resume by skipping
finished shards, summary and contact sheet); only the missing shards go to the actors.  Each actor
builds the renderer once (:func:`~digitaltwin_jax.synth.dataset.make_render_state`) and renders shard
after shard with :func:`~digitaltwin_jax.synth.dataset.render_shard`, the function of the local path:
image ``i`` depends only on ``(seed, i)``, so the shards are bit-identical to a local run.  A shard is
written to a temporary file and renamed, so a killed worker or driver leaves whole shards only.
"""
from __future__ import annotations

import dataclasses

from digitaltwin_jax.distributed.engine import MapConfig, map_items

__all__ = ["ShardSetup", "ray_runner", "generate_on_ray"]


@dataclasses.dataclass(frozen=True)
class ShardSetup:
    """Per-actor setup: ``ShardSetup(out_dir, config_json)()`` -> ``shard index -> (k, images, s)``."""

    out_dir: str
    config_json: dict

    def __call__(self):
        from digitaltwin_jax.synth.dataset import DatasetConfig, make_render_state, render_shard

        state = make_render_state(self.out_dir, DatasetConfig.from_json(self.config_json))
        return lambda k: render_shard(int(k), state)


def ray_runner(ray, map_config: MapConfig = MapConfig(), progress: bool = True):
    """A ``runner`` for :func:`~digitaltwin_jax.synth.dataset.generate` that renders on ``ray``."""

    def run(out_dir, config, pending, on_images):
        res = map_items(ray, ShardSetup(str(out_dir), config.to_json()), pending, config=map_config,
                        progress=False, on_result=lambda k, r: on_images(int(r[1])))
        return {k: v["error"] for k, v in res.failed.items()}

    return run


def generate_on_ray(out_dir, config, *, address: str = "local", workers: int | None = None,
                    progress: bool = True, max_shards: int | None = None) -> dict:
    """:func:`~digitaltwin_jax.synth.dataset.generate` with the shards rendered on Ray.

    Args:
      out_dir: output folder (on several nodes: a shared file system, same path everywhere).
      config: :class:`~digitaltwin_jax.synth.dataset.DatasetConfig`.
      address: ``"local"`` or a Ray cluster address (:func:`digitaltwin_jax.distributed.cluster.connect`).
      workers: actors (default one per CPU of the cluster).
      progress, max_shards: as for ``generate``.

    Returns:
      ``generate``'s summary (``workers``: the actors), with ``failed_shards`` ``{shard: error}``.
    """
    from digitaltwin_jax.distributed.cluster import cluster_cpus, connect
    from digitaltwin_jax.synth.dataset import generate

    ray = connect(address)
    n = int(workers or cluster_cpus(ray))
    return generate(out_dir, config, workers=n, progress=progress, max_shards=max_shards,
                    runner=ray_runner(ray, MapConfig(workers=n), progress))
