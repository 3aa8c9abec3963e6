"""The Ray map engine: setup once per worker, per-item failures recorded, a killed worker restarted and
its item retried, results equal to the plain function's."""
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from digitaltwin_jax.distributed.engine import MapConfig, map_items


@dataclasses.dataclass(frozen=True)
class _Setup:
    """Counts setups (one line per setup in ``log``); the item function squares, fails on 3 and kills
    its own process the first time it sees 4 (a killed worker)."""

    log: str

    def __call__(self):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        calls = []

        def fn(x):
            calls.append(x)
            if x == 3:
                raise ValueError("three is refused")
            marker = Path(self.log + ".killed")
            if x == 4 and not marker.exists():
                marker.write_text("once")
                os._exit(1)
            return x * x, os.getpid(), len(calls)

        return fn


@pytest.fixture(scope="module")
def engine_ray(ray_local):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test module is not importable by workers
    return ray_local


def test_failures_recorded_and_killed_worker_retried(engine_ray, tmp_path):
    log = str(tmp_path / "setups.log")
    items = list(range(8))
    res = map_items(engine_ray, _Setup(log), items, keys=[f"item{i}" for i in items],
                    config=MapConfig(workers=2, in_flight=1), progress=False)
    assert res.workers == 2 and len(res.setup_seconds) == 2
    assert set(res.failed) == {"item3"} and "ValueError: three is refused" in res.failed["item3"]["error"]
    assert {k: v[0] for k, v in res.results.items()} == {f"item{i}": i * i for i in items if i != 3}
    # two setups, plus one for the worker that was killed and restarted; each setup served several items
    setups = Path(log).read_text().split()
    assert len(setups) == 3 and len(set(setups)) == 3
    per_pid = {}
    for _, pid, n in res.results.values():
        per_pid.setdefault(pid, []).append(n)
    assert max(len(v) for v in per_pid.values()) >= 2  # state kept between the items of a worker
    for counts in per_pid.values():
        assert len(set(counts)) == len(counts)  # the calls of one process are counted by one closure


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="workers"):
        MapConfig(workers=0)
    with pytest.raises(ValueError, match="in_flight"):
        MapConfig(in_flight=0)


def test_more_workers_than_cpus_still_finishes(engine_ray, tmp_path):
    # 3 one-CPU actors on 2 CPUs: one is never placed; the other two do every item
    res = map_items(engine_ray, _Setup(str(tmp_path / "log")), [0, 1, 2, 5], config=MapConfig(workers=3),
                    progress=False)
    assert res.workers == 3 and 1 <= len(res.setup_seconds) <= 2 and not res.failed
    assert {k: v[0] for k, v in res.results.items()} == {0: 0, 1: 1, 2: 4, 5: 25}
