"""Training killed with SIGKILL mid-run and restarted ends bit-identical to an uninterrupted run
(issue "regressor on real photos", item 2: progress, checkpoints, resume)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import flax.serialization
import jax
import numpy as np

from digitaltwin_jax.regressor.train import CHECKPOINT, TrainConfig, train

EPOCHS = 300

SCRIPT = textwrap.dedent(f"""
    import sys
    import numpy as np
    from digitaltwin_jax.regressor.data import make_toy_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.train import TrainConfig, train

    rng = np.random.default_rng(7)
    mean = rng.normal(size=(40, 3)).astype(np.float32) * 50.0
    basis = rng.normal(size=(6, 40, 3)).astype(np.float32) * np.array([8, 6, 4, 3, 2, 1], np.float32)[:, None, None]
    w = np.where(np.arange(40) < 15, 5.0, 1.0).astype(np.float32)
    ds, _ = make_toy_dataset(mean, basis, 120, embedding_dim=12, noise=0.01, seed=0)
    tr, va = split_by_subject(ds, 0.2, seed=0)
    dec = DecoderConfig(embedding_dim=12, num_vertices=40, hidden=16, num_components=6)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=16, epochs={EPOCHS}, seed=3, checkpoint_every=1)
    train(tr, va, w, dec, cfg, out_dir=sys.argv[1], progress=False)
""")


def _leaves(a):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(a)]


def test_sigkill_then_resume_equals_uninterrupted(tiny_shapes, tmp_path):
    from digitaltwin_jax.regressor.data import make_toy_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig

    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(work)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    deadline = time.monotonic() + 600
    while not (work / CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = int(flax.serialization.msgpack_restore((work / CHECKPOINT).read_bytes())["epoch"])
    assert 1 <= killed_at < EPOCHS  # really interrupted, with a whole checkpoint on disk

    mean, basis, w = tiny_shapes  # the same generator as the script's
    ds, _ = make_toy_dataset(mean, basis, 120, embedding_dim=12, noise=0.01, seed=0)
    tr, va = split_by_subject(ds, 0.2, seed=0)
    dec = DecoderConfig(embedding_dim=12, num_vertices=40, hidden=16, num_components=6)
    # checkpoint_every does not change results, so the restart may checkpoint less often
    cfg = TrainConfig(learning_rate=1e-3, batch_size=16, epochs=EPOCHS, seed=3, checkpoint_every=EPOCHS)
    resumed = train(tr, va, w, dec, cfg, out_dir=work, progress=False)
    straight = train(tr, va, w, dec, cfg, progress=False)
    assert len(resumed.history["val_loss"]) == EPOCHS + 1
    for a, b in zip(_leaves(resumed.variables), _leaves(straight.variables)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(resumed.best_variables), _leaves(straight.best_variables)):
        np.testing.assert_array_equal(a, b)
    assert resumed.best_epoch == straight.best_epoch
    np.testing.assert_array_equal(resumed.history["val_loss"], straight.history["val_loss"])
    # and training did something: the last validation loss is well below the initial one
    assert straight.history["val_loss"][-1] < 0.8 * straight.history["val_loss"][0]
