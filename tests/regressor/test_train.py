"""Training loop: loss goes down on a tiny generated set, determinism, resumable checkpoints."""
import json

import jax
import numpy as np
import pytest

from digitaltwin_jax.regressor.data import make_toy_dataset, split_by_subject
from digitaltwin_jax.regressor.decoder import DecoderConfig
from digitaltwin_jax.regressor.train import CHECKPOINT, CURVES, TrainConfig, evaluate_loss, train

DEC = DecoderConfig(embedding_dim=12, num_vertices=40, hidden=16, num_components=6)


def _data(tiny_shapes, n=240):
    mean, basis, weights = tiny_shapes
    ds, _ = make_toy_dataset(mean, basis, n, embedding_dim=12, noise=0.01, seed=0)
    return (*split_by_subject(ds, 0.2, seed=0), weights)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_short_training_lowers_the_loss(tiny_shapes):
    tr, va, w = _data(tiny_shapes)
    cfg = TrainConfig(learning_rate=3e-3, batch_size=32, epochs=40, seed=0)
    res = train(tr, va, w, DEC, cfg, progress=False)
    h = res.history
    assert len(h["train_loss"]) == 41 and h["epoch"][-1] == 40
    # the PCA-initialised decoder starts near the mean head; training must cut the error a lot
    assert h["val_loss"][-1] < 0.4 * h["val_loss"][0]
    assert h["train_loss"][-1] < 0.4 * h["train_loss"][0]
    # the reported best epoch really is the best, and its variables give that loss
    assert h["val_loss"][res.best_epoch] == min(h["val_loss"])
    assert evaluate_loss(DEC, res.best_variables, va, w) == pytest.approx(min(h["val_loss"]), rel=1e-5)
    # and the decoder beats the mean head (prediction = training mean) by a wide margin
    mean_err = np.mean(np.sum(w * np.abs(va.vertices - tr.vertices.mean(0)).sum(-1), -1) / w.sum())
    assert h["val_loss"][-1] < 0.5 * mean_err


def test_deterministic_and_resumable(tiny_shapes, tmp_path):
    tr, va, w = _data(tiny_shapes, n=120)
    full = TrainConfig(learning_rate=1e-3, batch_size=16, epochs=4, seed=3, checkpoint_every=1)
    a = train(tr, va, w, DEC, full, out_dir=tmp_path / "a", progress=False)
    b = train(tr, va, w, DEC, full, progress=False)
    assert _leaves_equal(a.variables, b.variables)  # same seed, same result
    # interrupted after 2 epochs, then resumed to 4: bit-identical to the uninterrupted run
    half = TrainConfig(learning_rate=1e-3, batch_size=16, epochs=2, seed=3, checkpoint_every=1)
    train(tr, va, w, DEC, half, out_dir=tmp_path / "c", progress=False)
    c = train(tr, va, w, DEC, full, out_dir=tmp_path / "c", progress=False)
    assert _leaves_equal(a.variables, c.variables)
    assert _leaves_equal(a.best_variables, c.best_variables) and a.best_epoch == c.best_epoch
    np.testing.assert_array_equal(a.history["val_loss"], c.history["val_loss"])
    assert (tmp_path / "c" / CHECKPOINT).exists() and (tmp_path / "c" / CURVES).stat().st_size > 1000
    rec = json.loads((tmp_path / "c" / "train_config.json").read_text())
    assert rec["train"]["seed"] == 3 and rec["decoder"]["num_vertices"] == 40
    # another seed gives other weights
    d = train(tr, va, w, DEC, TrainConfig(learning_rate=1e-3, batch_size=16, epochs=1, seed=4), progress=False)
    assert not _leaves_equal(a.variables, d.variables)
    # a checkpoint of another configuration is refused
    other = TrainConfig(learning_rate=2e-3, batch_size=16, epochs=4, seed=3)
    with pytest.raises(ValueError, match="another configuration"):
        train(tr, va, w, DEC, other, out_dir=tmp_path / "c", progress=False)


def test_input_validation(tiny_shapes):
    tr, va, w = _data(tiny_shapes, n=60)
    with pytest.raises(ValueError, match="does not match the decoder"):
        train(tr, va, w, DecoderConfig(embedding_dim=5, num_vertices=40), TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="weights"):
        train(tr, va, w[:-1], DEC, TrainConfig(epochs=1), progress=False)
