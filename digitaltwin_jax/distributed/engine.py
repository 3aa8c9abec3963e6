"""Map items over Ray actors that set up once: the common engine of the Ray jobs.

One actor per worker process runs a ``setup()`` callable once (load the head model, build the
renderer, warm up the jit-compiled solver) and then applies the function it returned to item after
item.  The driver keeps ``in_flight`` items queued per actor, shows a progress bar, and records
per-item failures without stopping:

* an exception raised for an item is caught in the worker and recorded under the item's key;
* a worker process that dies (killed, out of memory, a crashed node) is restarted by Ray (its setup
  runs again) and the item it held is retried ``task_retries`` times before it is recorded as failed;
* a worker whose setup fails is dropped; when no worker is left the run raises RuntimeError.

Results travel back through Ray's object store, so keep them small (the jobs here write their big
outputs to files themselves and return a summary).
"""
from __future__ import annotations

import collections
import dataclasses
import time
import traceback
from typing import Any, Callable, Iterable

__all__ = ["MapConfig", "MapResult", "map_items"]


@dataclasses.dataclass(frozen=True)
class MapConfig:
    """How items are spread over workers.

    Attributes:
      workers: actors to start (None: one per CPU the cluster declares).
      cpus_per_worker: CPUs Ray reserves for each actor.
      in_flight: items queued per actor (2 hides the driver round trip behind the work).
      max_restarts: times Ray restarts a dead actor (its setup runs again).
      task_retries: times the item of a dead actor is retried on the restarted actor.
    """

    workers: int | None = None
    cpus_per_worker: float = 1.0
    in_flight: int = 2
    max_restarts: int = 3
    task_retries: int = 1

    def __post_init__(self):
        if self.workers is not None and int(self.workers) < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not self.cpus_per_worker > 0 or int(self.in_flight) < 1:
            raise ValueError(f"cpus_per_worker must be > 0 and in_flight >= 1, got {self}")
        if int(self.max_restarts) < 0 or int(self.task_retries) < 0:
            raise ValueError(f"max_restarts and task_retries must be >= 0, got {self}")


@dataclasses.dataclass(frozen=True)
class MapResult:
    """Outcome of :func:`map_items`.

    Attributes:
      results: ``{key: value}`` returned by the worker function, for the items that succeeded.
      failed: ``{key: {"error": str, "traceback": str}}`` for the items that did not.
      seconds: wall time from the first actor start to the last result.
      setup_seconds: seconds each actor spent in ``setup()`` (one entry per successful setup).
      workers: actors started.
    """

    results: dict
    failed: dict
    seconds: float
    setup_seconds: list
    workers: int


class _Worker:
    """The actor body: ``setup()`` once, then ``fn(item)`` per call (exceptions returned as values)."""

    def __init__(self, setup: Callable[[], Callable[[Any], Any]]):
        t0 = time.perf_counter()
        self._fn = setup()
        self._setup_s = time.perf_counter() - t0

    def ready(self) -> float:
        return self._setup_s

    def run(self, item):
        try:
            return True, self._fn(item)
        except Exception as exc:  # noqa: BLE001 - recorded per item, the run goes on
            return False, {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def map_items(ray, setup: Callable[[], Callable[[Any], Any]], items: Iterable, *, keys: Iterable | None = None,
              config: MapConfig = MapConfig(), progress: bool = True, desc: str = "items",
              unit: str = "item", on_result: Callable[[Any, Any], None] | None = None) -> MapResult:
    """Apply ``setup()(item)`` to every item on Ray actors.

    Args:
      ray: the connected ``ray`` module (:func:`.cluster.connect`).
      setup: picklable zero-argument callable run once per actor; returns the per-item function.
      items: picklable work items (small: a path, a shard index).
      keys: a key per item for the results (default: the items themselves).
      config: :class:`MapConfig`.
      progress: tqdm bar over items.  desc, unit: its label.
      on_result: ``(key, value)`` called in the driver as each item succeeds (e.g. to save a cache).

    Returns:
      :class:`MapResult`.

    Raises:
      RuntimeError: every worker failed its setup or died for good (the message holds the first
        error); what finished before is on disk, a rerun resumes.
    """
    from tqdm.auto import tqdm

    items = list(items)
    keys = list(items if keys is None else keys)
    if len(keys) != len(items):
        raise ValueError(f"{len(keys)} keys for {len(items)} items")
    from digitaltwin_jax.distributed.cluster import cluster_cpus

    n = min(int(config.workers or cluster_cpus(ray)), max(len(items), 1))
    remote = ray.remote(_Worker).options(num_cpus=config.cpus_per_worker, max_restarts=config.max_restarts,
                                         max_task_retries=config.task_retries)
    t0 = time.perf_counter()
    results, failed, setup_s = {}, {}, []
    if not items:
        return MapResult(results, failed, 0.0, setup_s, 0)
    actors = [remote.remote(setup) for _ in range(n)]
    pending = collections.deque(zip(keys, items))
    inflight: dict = {}  # ref -> (actor, key, item) ; actor -1 marks a readiness probe of actor `key`
    load = [0] * n
    alive: set = set()
    setup_errors = []

    def submit(a):
        while pending and load[a] < config.in_flight:
            key, item = pending.popleft()
            inflight[actors[a].run.remote(item)] = (a, key, item)
            load[a] += 1

    for a in range(n):
        inflight[actors[a].ready.remote()] = (-1, a, None)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, smoothing=0.05)
    try:
        # stop when every item is done, even if an actor never started (more workers than free CPUs)
        while pending or any(a != -1 for a, _, _ in inflight.values()):
            if not inflight:
                raise RuntimeError(f"no Ray worker left with {len(pending)} items to go; rerun to resume")
            done, _ = ray.wait(list(inflight), num_returns=1)
            ref = done[0]
            a, key, item = inflight.pop(ref)
            if a == -1:  # readiness of actor `key`
                try:
                    setup_s.append(float(ray.get(ref)))
                    alive.add(key)
                    submit(key)
                except Exception as exc:  # noqa: BLE001 - setup failure: drop this worker
                    setup_errors.append(f"{type(exc).__name__}: {exc}")
                    ray.kill(actors[key], no_restart=True)
                if not alive and len(setup_errors) == n:
                    raise RuntimeError(f"every Ray worker failed to set up; first error: {setup_errors[0]}")
                continue
            load[a] -= 1
            try:
                ok, value = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the worker died and its retries are spent
                ok, value = False, {"error": f"worker died: {type(exc).__name__}: {exc}", "traceback": ""}
                if not _responds(ray, actors[a]):
                    alive.discard(a)
            if ok:
                results[key] = value
                if on_result is not None:
                    on_result(key, value)
            else:
                failed[key] = value
                bar.write(f"failed {key}: {value['error']}")
            bar.update(1)
            if a in alive:
                submit(a)
            if not alive and pending and not any(x[0] == -1 for x in inflight.values()):
                raise RuntimeError(f"no Ray worker left with {len(pending)} items to go "
                                   f"(first error: {(setup_errors or [value['error']])[0]}); rerun to resume")
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return MapResult(results, failed, time.perf_counter() - t0, setup_s, n)


def _responds(ray, actor) -> bool:
    try:
        ray.get(actor.ready.remote(), timeout=600)
    except Exception:  # noqa: BLE001 - dead for good (or unreachable)
        return False
    return True
