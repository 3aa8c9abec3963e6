"""Data-parallel regressor training (``jax.sharding``) on 2 forced CPU devices matches single-device
training: the same loss curve within float32 summation order, the batch really split over both."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json
    import jax
    import numpy as np
    from digitaltwin_jax.regressor.data import make_toy_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.parallel import data_mesh, shard_batches
    from digitaltwin_jax.regressor.train import TrainConfig, train

    assert jax.device_count() == 2, jax.devices()
    rng = np.random.default_rng(7)
    mean = rng.normal(size=(40, 3)).astype(np.float32) * 50.0
    basis = rng.normal(size=(6, 40, 3)).astype(np.float32) * np.array([8, 6, 4, 3, 2, 1], np.float32)[:, None, None]
    w = np.where(np.arange(40) < 15, 5.0, 1.0).astype(np.float32)
    ds, _ = make_toy_dataset(mean, basis, 200, embedding_dim=12, noise=0.01, seed=0)
    tr, va = split_by_subject(ds, 0.2, seed=0)
    dc = DecoderConfig(embedding_dim=12, num_vertices=40, hidden=16, num_components=6)
    cfg = TrainConfig(epochs=40, batch_size=16, learning_rate=3e-3, seed=3)
    one = train(tr, va, w, dc, cfg, progress=False, mesh=None)
    two = train(tr, va, w, dc, cfg, progress=False, mesh="auto")
    b = shard_batches(data_mesh(), np.arange(32, dtype=np.int32).reshape(2, 16))
    shards = sorted((s.device.id, s.data.shape, int(np.asarray(s.data)[0, 0])) for s in b.addressable_shards)
    try:
        shard_batches(data_mesh(), np.zeros((2, 15), np.int32))
        odd = "accepted"
    except ValueError as e:
        odd = str(e)
    p1 = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(one.variables["params"])])
    p2 = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(two.variables["params"])])
    print(json.dumps({"one": one.history, "two": two.history, "shards": shards, "odd": odd,
                      "param_diff": float(np.max(np.abs(p1 - p2))), "param_scale": float(np.max(np.abs(p1)))}))
""")


@pytest.fixture(scope="module")
def runs():
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip())
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_loss_curve_matches_single_device(runs):
    one, two = runs["one"], runs["two"]
    assert len(one["train_loss"]) == len(two["train_loss"]) == 41
    assert one["train_loss"][-1] < 0.5 * one["train_loss"][0]  # it learned something
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-5)
    assert runs["param_diff"] <= 1e-5 * runs["param_scale"]


def test_batch_is_split_over_both_devices(runs):
    # rows 0..15 | 16..31: each device holds half of every step's batch
    assert runs["shards"] == [[0, [2, 8], 0], [1, [2, 8], 8]]
    assert "divisible" in runs["odd"]


MULTIHOST = textwrap.dedent("""
    import json, sys
    from digitaltwin_jax.regressor.parallel import initialize_multihost
    index, count = initialize_multihost(sys.argv[1], 2, int(sys.argv[2]))
    import jax
    import numpy as np
    from digitaltwin_jax.regressor.data import make_toy_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.train import TrainConfig, train

    rng = np.random.default_rng(7)
    mean = rng.normal(size=(40, 3)).astype(np.float32) * 50.0
    basis = rng.normal(size=(6, 40, 3)).astype(np.float32) * np.array([8, 6, 4, 3, 2, 1], np.float32)[:, None, None]
    w = np.where(np.arange(40) < 15, 5.0, 1.0).astype(np.float32)
    ds, _ = make_toy_dataset(mean, basis, 200, embedding_dim=12, noise=0.01, seed=0)
    tr, va = split_by_subject(ds, 0.2, seed=0)
    dc = DecoderConfig(embedding_dim=12, num_vertices=40, hidden=16, num_components=6)
    cfg = TrainConfig(epochs=40, batch_size=16, learning_rate=3e-3, seed=3)
    res = train(tr, va, w, dc, cfg, progress=False, mesh="auto")
    print(json.dumps({"index": index, "count": count, "devices": jax.device_count(),
                      "local": jax.local_device_count(), "train": res.history["train_loss"],
                      "val": res.history["val_loss"]}))
""")


def test_two_processes_with_jax_distributed_match_single_device(runs):
    # two processes on this machine, one CPU device each, joined by jax.distributed.initialize: the
    # multi-host path (global mesh over both processes' devices, each feeding its own device)
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, "-c", MULTIHOST, f"localhost:{port}", str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for i, o in enumerate(outs):
        assert (o["index"], o["count"], o["devices"], o["local"]) == (i, 2, 2, 1)
        np.testing.assert_allclose(o["train"], runs["one"]["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(o["val"], runs["one"]["val_loss"], rtol=1e-5)
