"""Synthetic sets rendered on Ray (local, 2 CPUs): bit-identical to the local path, resumable after a
crash, and through the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax.synth.dataset import DatasetConfig, generate, load_shard, shard_path
from digitaltwin_jax.synth.scene import SceneConfig

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--count", "5", "--shard-size", "2", "--size", "48", "--seed", "9", "--sampler", "gaussian",
        "--bank-size", "2", "--texture-size", "64", "--no-progress"]


def _config():
    return DatasetConfig(count=5, seed=9, shard_size=2, sampler="gaussian", bank_size=2, texture_size=64,
                         scene=SceneConfig(image_size=48, photo_background_probability=0.0))


def _shards(out, cfg):
    return [load_shard(shard_path(out, k)) for k in range(cfg.num_shards)]


@pytest.fixture(scope="module")
def local_set(tmp_path_factory, low_model):
    out = tmp_path_factory.mktemp("local")
    assert generate(out, _config(), workers=1, progress=False, contact_sheet_path=None)["complete"]
    return _shards(out, _config())


def test_ray_shards_are_bit_identical_and_resume(ray_local, local_set, tmp_path):
    from digitaltwin_jax.synth.ray_shards import generate_on_ray

    cfg = _config()
    # a run that stops after one shard (as a crashed driver would), then the rerun renders the rest
    first = generate_on_ray(tmp_path, cfg, workers=2, progress=False, max_shards=1)
    assert not first["complete"] and first["rendered_now"] == 2 and first["failed_shards"] == {}
    stamp = shard_path(tmp_path, 0).stat().st_mtime_ns
    second = generate_on_ray(tmp_path, cfg, workers=2, progress=False)
    assert second["complete"] and second["rendered_now"] == 3 and second["workers"] == 2
    assert shard_path(tmp_path, 0).stat().st_mtime_ns == stamp  # finished shards are not redone
    assert not list(tmp_path.glob(".*.tmp"))
    for k, (a, b) in enumerate(zip(local_set, _shards(tmp_path, cfg))):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"shard {k} {key}")


def test_cli_ray_local(ray_local, local_set, tmp_path):
    # a separate process with its own local Ray instance, as a user would run it
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "digitaltwin_jax.synth.cli", "--out", str(tmp_path), *ARGS,
                        "--ray", "local", "--workers", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["complete"] and summary["failed_shards"] == {} and summary["workers"] == 1
    np.testing.assert_array_equal(np.concatenate([s["images"] for s in local_set]),
                                  np.concatenate([s["images"] for s in _shards(tmp_path, _config())]))
