"""``digitaltwin regressor embed DATA --ray``: the front end over a synthetic set's shards on Ray
actors (paper section 3.3: the encoder's features of 10^4-10^5 renders, computed once and cached).

The driver is :func:`digitaltwin_jax.regressor.data.frontend_cache` (which images are missing, the
front-end identity check, the atomic cache writes every ``save_every`` images, resume); only the work
moves: each actor runs the front end (the dlib models load once per actor, on its first image) over
whole shards with :func:`~digitaltwin_jax.regressor.data.run_frontend_on_shard`, the function of the
local path, and sends back ``(index, embedding, landmarks)`` rows -- small, so the cache is written by
the driver alone.  The shard files must be readable by every worker (shared file system).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from digitaltwin_jax.distributed.engine import MapConfig, map_items

__all__ = ["FrontendSetup", "ray_runner", "embed_on_ray"]


@dataclasses.dataclass(frozen=True)
class FrontendSetup:
    """Per-actor setup: ``FrontendSetup(frontend)()`` -> ``(shard path, rows) -> [(index, result)]``."""

    frontend: Callable

    def __call__(self):
        from digitaltwin_jax.regressor.data import run_frontend_on_shard

        return lambda job: run_frontend_on_shard(self.frontend, job[0], job[1])


def ray_runner(ray, map_config: MapConfig = MapConfig()):
    """A ``runner`` for :func:`~digitaltwin_jax.regressor.data.frontend_cache` on ``ray``."""

    def run(work, frontend, record):
        res = map_items(ray, FrontendSetup(frontend), work, keys=[p for p, _ in work], config=map_config,
                        progress=False, on_result=lambda key, rows: record(rows))
        return {k: v["error"] for k, v in res.failed.items()}

    return run


def embed_on_ray(root, *, address: str = "local", workers: int | None = None, limit: int | None = None,
                 frontend: Callable | None = None, progress: bool = True, **kwargs) -> tuple[int, int]:
    """:func:`~digitaltwin_jax.regressor.data.frontend_cache` with the front end run on Ray.

    Args:
      root: synthetic data-set folder.  limit, frontend, progress, kwargs: as for ``frontend_cache``
        (a custom ``frontend`` must be picklable).
      address: ``"local"`` or a Ray cluster address (:func:`digitaltwin_jax.distributed.cluster.connect`).
      workers: actors (default one per CPU of the cluster).

    Returns:
      (images considered, images with a face).
    """
    from digitaltwin_jax.distributed.cluster import connect
    from digitaltwin_jax.regressor.data import frontend_cache

    ray = connect(address)
    return frontend_cache(root, limit=limit, frontend=frontend, progress=progress,
                          runner=ray_runner(ray, MapConfig(workers=workers)), **kwargs)
