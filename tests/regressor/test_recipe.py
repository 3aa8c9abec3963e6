"""The regressor's recipe: training-set configuration, neutral targets of renders with expressions,
provenance."""
import json
import subprocess

import numpy as np

from digitaltwin_jax import load_head_model
from digitaltwin_jax.regressor.data import frontend_cache, load_synth_dataset
from digitaltwin_jax.regressor.recipe import code_commit, provenance, training_data_config
from digitaltwin_jax.synth.dataset import DatasetConfig
from digitaltwin_jax.synth.evalsets import out_of_distribution_config


def test_training_config_has_the_realism_ingredients_and_differs_from_set_b():
    cfg = training_data_config(10000, 7001)
    assert (cfg.sampler, cfg.render.eyes, cfg.albedo_source, cfg.scene.expressions) == ("dr", "eyeballs", "texture-bank", True)
    assert cfg.scene.camera.max_rotation_deg == 15.0 and cfg.scene.camera.max_yaw_deg is None  # paper: +-15
    assert cfg.dr_radius == (0.6, 1.3) and cfg.detail_rms == (0.0, 0.0)  # paper's DR range, no set-(b) detail
    assert cfg.scene.post.jpeg_probability > 0 and cfg.scene.post.noise_sigma[1] > 0
    assert DatasetConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    b = out_of_distribution_config(100, 2001)
    assert b.seed != cfg.seed and b.dr_radius != cfg.dr_radius
    assert training_data_config(10, 1, sampler="noaug").sampler == "noaug"


def test_renders_with_expressions_train_on_the_neutral_head(tmp_path):
    model = load_head_model("low")
    rng = np.random.default_rng(0)
    n, m = 3, model.expression_basis.shape[0]
    neutral = model.vertices[None] + rng.normal(scale=2.0, size=(n,) + model.vertices.shape)
    w = np.zeros((n, m))
    w[:, rng.choice(m, 5, replace=False)] = rng.uniform(0.2, 1.0, size=(n, 5))
    offsets = np.einsum("nm,mvk->nvk", w, np.asarray(model.expression_basis, np.float64))
    root = tmp_path / "set"
    root.mkdir()
    imgs = np.zeros((n, 8, 8, 3), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n)
    np.savez(root / "shard_00000.npz", index=np.arange(n, dtype=np.int64), images=imgs,
             vertices=(neutral + offsets).astype(np.float32), expression=w.astype(np.float32))
    (root / "manifest.json").write_text(json.dumps({"config": {"seed": 1, "sampler": "dr", "count": n, "resolution": "low"},
                                                     "shards": ["shard_00000.npz"]}))
    frontend_cache(root, frontend=lambda im: (np.full(4, float(im[0, 0, 0])), np.zeros((68, 2))), progress=False)
    ds, _ = load_synth_dataset(root)
    assert np.max(np.abs(offsets)) > 1.0  # the expressions really move the head
    np.testing.assert_allclose(ds.vertices, neutral, atol=2e-3)
    assert len(np.unique(ds.subject_ids)) == n


def test_provenance_records_the_commit():
    rec = provenance([{"config": training_data_config(8, 1).to_json()}], {"epochs": 1})
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert rec["code"]["commit"] == (head or None) and rec["datasets"][0]["config"]["seed"] == 1
    assert code_commit("/").get("commit") is None  # not a checkout: recorded as unknown, no crash
    json.dumps(rec)
