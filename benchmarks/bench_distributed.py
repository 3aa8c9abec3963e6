"""Ray backend (issue 18): throughput of 1 and 2 Ray workers against the local path, per-item overhead.

Rows (all on this machine, one Ray instance per command, a warm persistent compilation cache):

* ``avatar --batch`` of N = 8 and 24 copies of the example photo: the local path in one process
  (``--workers 1``) and as a local pool of 2 processes (``--workers 2``, issue 17's default here) vs
  ``--ray local --workers 1`` and ``--workers 2``; wall time of the whole
  command (process start, imports, Ray start, worker setup included), ratio = one local process / this
  (> 1: faster); the slope between the two N is the steady cost per photo, the intercept the fixed cost;
* ``synth`` of N images (128 px): the local process pool (``--workers 2``) vs Ray with 1 and 2 workers;
* Ray's own cost: ``ray.init`` of a local instance, and the round trip per item of a no-op mapped
  over 2 workers (``map_items``: driver -> actor -> driver, ``in_flight`` 2).

Run:  python benchmarks/bench_distributed.py [--quick]   (needs the 'distributed' extra)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.png"


def _cli(args, env) -> float:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "digitaltwin_jax", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return wall


def _per_photo(out: Path) -> str:
    """Median and largest per-photo time from the reports (the largest: a worker's first photo, which
    loads the compiled programs)."""
    import numpy as np

    times = [sum(json.loads((d / "report.json").read_text())["timings_s"].values())
             for d in sorted(out.iterdir()) if (d / "report.json").exists()]
    return f"per photo (stages): median {np.median(times):.2f} s, max {max(times):.2f} s"


def _noop_setup():
    return lambda x: x


def _ray_overhead(items: int = 400) -> tuple[float, float]:
    """(seconds of ray.init for a local instance, seconds per item of a no-op on 2 workers)."""
    from digitaltwin_jax.distributed.cluster import connect
    from digitaltwin_jax.distributed.engine import MapConfig, map_items

    import ray

    t = time.perf_counter()
    connect("local", num_cpus=2)
    init = time.perf_counter() - t
    map_items(ray, _noop_setup, range(8), config=MapConfig(workers=2), progress=False)  # workers started
    res = map_items(ray, _noop_setup, range(items), config=MapConfig(workers=2), progress=False)
    per_item = (res.seconds - max(res.setup_seconds)) / items
    ray.shutdown()
    return init, per_item


def run(quick: bool = False) -> list[dict]:
    sizes = (2, 6) if quick else (8, 24)
    n_images = 16 if quick else 32
    size = 512 if quick else 2048
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, DIGITALTWIN_CACHE_DIR=str(tmp / "cache"), PYTHONPATH=str(ROOT))
        folders = {}
        for n in sizes:
            folders[n] = tmp / f"photos{n}"
            folders[n].mkdir()
            for i in range(n):
                shutil.copy(EXAMPLE, folders[n] / f"p{i:03d}.png")
        opts = ["--texture-size", str(size)]
        _cli(["avatar", "--batch", str(folders[sizes[0]]), "-o", str(tmp / "warm"), *opts], env)  # compile cache
        walls = {}
        for name, extra in (("local, 1 process", ["--workers", "1"]),
                            ("local pool, 2 processes", ["--workers", "2"]),
                            ("Ray, 1 worker", ["--ray", "local", "--workers", "1"]),
                            ("Ray, 2 workers", ["--ray", "local", "--workers", "2"])):
            for n in sizes:
                out = tmp / f"{name.replace(' ', '').replace(',', '')}_{n}"
                walls[name, n] = _cli(["avatar", "--batch", str(folders[n]), "-o", str(out), *opts, *extra], env)
                base = walls["local, 1 process", n]
                rows.append({"area": "distributed", "case": f"avatar --batch, {n} photos, tex {size}: {name}",
                             "ours_ms": walls[name, n] * 1e3,
                             **({} if name.startswith("local, 1") else {
                                 "baseline": "local, 1 process", "baseline_ms": base * 1e3,
                                 "ratio": base / walls[name, n]}),
                             "notes": _per_photo(out)})
            n1, n2 = sizes
            per = (walls[name, n2] - walls[name, n1]) / (n2 - n1)
            fixed = walls[name, n1] - n1 * per
            rows.append({"area": "distributed", "case": f"avatar: {name}, seconds per extra photo (slope {n1}->{n2})",
                         "ours_ms": per * 1e3, "notes": f"fixed cost (intercept) {fixed:.1f} s; "
                                                       f"steady throughput {1 / per:.2f} photos/s"})
        synth = ["synth", "--count", str(n_images), "--shard-size", "4", "--size", "128", "--sampler", "gaussian",
                 "--no-progress"]
        local = _cli([*synth, "--out", str(tmp / "s_local"), "--workers", "2"], env)
        rows.append({"area": "distributed", "case": f"synth {n_images} images 128 px: local pool, 2 processes",
                     "ours_ms": local * 1e3})
        for w in (1, 2):
            wall = _cli([*synth, "--out", str(tmp / f"s_ray{w}"), "--ray", "local", "--workers", str(w)], env)
            rows.append({"area": "distributed", "case": f"synth {n_images} images 128 px: Ray, {w} worker(s)",
                         "ours_ms": wall * 1e3, "baseline": "local pool, 2 processes", "baseline_ms": local * 1e3,
                         "ratio": local / wall})
    init, per_item = _ray_overhead(100 if quick else 400)
    rows.append({"area": "distributed", "case": "ray.init, local instance", "ours_ms": init * 1e3})
    rows.append({"area": "distributed", "case": "Ray round trip per item (no-op, 2 workers)", "ours_ms": per_item * 1e3})
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(json.dumps(r))
