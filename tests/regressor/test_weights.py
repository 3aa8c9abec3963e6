"""Save/load round trip of a regressor folder."""
import jax
import numpy as np
import pytest

from digitaltwin_jax.regressor.decoder import DecoderConfig, decode, init_decoder, pca_basis
from digitaltwin_jax.regressor.weights import load_regressor, save_regressor


def test_round_trip(tmp_path, tiny_shapes):
    mean, basis, _ = tiny_shapes
    shapes = mean + np.tensordot(np.random.default_rng(0).normal(size=(20, 6)), basis, axes=1)
    cfg = DecoderConfig(embedding_dim=8, num_vertices=40, hidden=10, num_components=5)
    var = init_decoder(jax.random.key(0), cfg, pca_basis(shapes, 5), np.arange(8.0), np.full(8, 2.0))
    save_regressor(tmp_path / "r", cfg, var, {"resolution": "low", "dataset": {"seed": 11}}, {"val_loss": 1.5})
    reg = load_regressor(tmp_path / "r")
    assert reg.config == cfg and reg.record["dataset"]["seed"] == 11 and reg.metrics == {"val_loss": 1.5}
    for x, y in zip(jax.tree_util.tree_leaves(var), jax.tree_util.tree_leaves(reg.variables)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    e = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(reg(e)), np.asarray(decode(cfg, var, e)))
    assert reg(e[0]).shape == (40, 3)
    with pytest.raises(ValueError, match="embeddings"):
        reg(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        reg(np.full(8, np.nan))


def test_missing_or_mismatched_files(tmp_path, tiny_shapes):
    with pytest.raises(FileNotFoundError, match="decoder.msgpack"):
        load_regressor(tmp_path)
    mean, basis, _ = tiny_shapes
    shapes = mean + np.tensordot(np.random.default_rng(0).normal(size=(20, 6)), basis, axes=1)
    cfg = DecoderConfig(embedding_dim=8, num_vertices=40, hidden=10, num_components=5)
    save_regressor(tmp_path, cfg, init_decoder(jax.random.key(0), cfg, pca_basis(shapes, 5)), {})
    # tamper with the recorded architecture
    import json

    rec = json.loads((tmp_path / "config.json").read_text())
    rec["decoder"]["hidden"] = 11
    (tmp_path / "config.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="do not match"):
        load_regressor(tmp_path)


def test_shipped_regressor_loads_and_records_its_provenance():
    from digitaltwin_jax.regressor.weights import shipped_regressor_dir

    if not (shipped_regressor_dir() / "decoder.msgpack").exists():
        pytest.skip("no shipped regressor")
    from digitaltwin_jax.model.head_model import asset_path

    reg = load_regressor()
    assert reg.config.embedding_dim == 128 and reg.config.num_components == 200
    assert reg.resolution == "low" and reg.encoder == "dlib_resnet_v1"
    ds = reg.record["datasets"][0]
    assert isinstance(ds["seed"], int) and ds["num_with_face"] > 0
    assert {"train", "split", "decoder"} <= set(reg.record)
    assert "use_as_default" in reg.metrics and "heldout" in reg.metrics
    if asset_path("ict_head_low.npz").exists():
        from digitaltwin_jax import load_head_model

        m = load_head_model("low")
        # the training-set mean embedding decodes to a plausible head: close to the model's mean head
        v = np.asarray(reg(np.asarray(reg.variables["constants"]["input_mean"])))
        assert v.shape == (m.num_vertices, 3)
        assert np.sqrt(np.mean(np.sum((v - m.vertices) ** 2, axis=1))) < 10.0  # mm
