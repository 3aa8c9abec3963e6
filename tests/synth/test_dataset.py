"""The data-set writer: determinism, resume after an interruption, metadata consistency, CLI."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax.synth.dataset import DatasetConfig, generate, load_shard, shard_path
from digitaltwin_jax.synth.scene import SceneConfig, image_seed

REPO = Path(__file__).resolve().parents[2]


def _config(**kw):
    base = dict(count=5, seed=9, shard_size=2, sampler="gaussian", bank_size=2, texture_size=64,
                scene=SceneConfig(image_size=48, photo_background_probability=0.0))
    base.update(kw)
    return DatasetConfig(**base)


def _all(out, cfg):
    shards = [load_shard(shard_path(out, k)) for k in range(cfg.num_shards)]
    return {k: np.concatenate([s[k] for s in shards]) if shards[0][k].ndim and k not in
            ("preset_names", "albedo_ids", "background_kinds") else shards[0][k] for k in shards[0]}


def _quat_to_matrix(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@pytest.fixture(scope="module")
def reference_set(tmp_path_factory, low_model):
    out = tmp_path_factory.mktemp("ref")
    cfg = _config()
    summary = generate(out, cfg, workers=1, progress=False)
    assert summary["complete"] and summary["rendered_now"] == 5
    return out, cfg, _all(out, cfg)


def test_files_and_metadata_are_consistent(reference_set, low_model, project_reference):
    out, cfg, d = reference_set
    assert sorted(p.name for p in out.glob("shard_*.npz")) == [f"shard_0000{k}.npz" for k in range(3)]
    assert (out / "contact_sheet.png").exists() and (out / "manifest.json").exists()
    assert d["images"].shape == (5, 48, 48, 3) and d["images"].dtype == np.uint8
    np.testing.assert_array_equal(d["index"], np.arange(5))
    np.testing.assert_array_equal(d["seed"], [image_seed(9, i) for i in range(5)])
    for i in range(5):
        X = d["vertices"][i][low_model.landmark_indices]
        ref = project_reference(X, d["rotation"][i], d["translation"][i], d["K"][i])
        np.testing.assert_allclose(d["landmarks_2d"][i], ref, atol=1e-3)
        np.testing.assert_allclose(_quat_to_matrix(d["quaternion"][i]), d["rotation"][i], atol=1e-5)
        # the stored vertices are the identity reconstruction (Gaussian sampler: exact, no expression)
        rec = low_model.vertices + np.tensordot(d["identity"][i], low_model.identity_basis, axes=1)
        np.testing.assert_allclose(d["vertices"][i], rec, atol=1e-3)
    assert np.abs(d["euler_deg"]).max() <= 15
    assert d["preset_names"].shape == (30,) and d["preset"].max() < 30
    assert d["albedo"].max() < 2 and d["albedo_ids"].shape == (2,)
    eye = np.unpackbits(d["eye_mask"], axis=-1)[..., :48]
    assert eye.shape == (5, 48, 48) and eye.sum() > 0
    face = np.unpackbits(d["face_mask"], axis=-1)[..., :48].astype(bool)
    assert (face | ~eye.astype(bool)).all()  # eye pixels are head pixels


def test_same_seed_same_data_set(reference_set, tmp_path):
    _, cfg, d = reference_set
    generate(tmp_path, cfg, workers=1, progress=False, contact_sheet_path=None)
    e = _all(tmp_path, cfg)
    for k in d:
        np.testing.assert_array_equal(d[k], e[k], err_msg=k)


def test_resume_after_interruption(reference_set, tmp_path):
    _, cfg, d = reference_set
    generate(tmp_path, cfg, workers=1, progress=False, max_shards=1)  # "killed" after one shard
    assert shard_path(tmp_path, 0).exists() and not shard_path(tmp_path, 1).exists()
    first = os.stat(shard_path(tmp_path, 0)).st_mtime_ns
    (tmp_path / ".shard_00001.npz.abc.tmp").write_bytes(b"half a shard")  # killed mid-write
    s = generate(tmp_path, cfg, workers=1, progress=False)
    assert s["rendered_now"] == 3 and s["complete"]
    assert os.stat(shard_path(tmp_path, 0)).st_mtime_ns == first  # finished shards are skipped
    assert not list(tmp_path.glob(".*.tmp"))
    shard_path(tmp_path, 1).unlink()  # a lost shard is rendered again, identically
    s = generate(tmp_path, cfg, workers=1, progress=False)
    assert s["rendered_now"] == 2
    e = _all(tmp_path, cfg)
    for k in d:
        np.testing.assert_array_equal(d[k], e[k], err_msg=k)


def test_a_folder_is_tied_to_its_configuration(reference_set, tmp_path):
    _, cfg, _ = reference_set
    generate(tmp_path, cfg, workers=1, progress=False, max_shards=1)
    with pytest.raises(ValueError, match="different configuration"):
        generate(tmp_path, dataclasses.replace(cfg, seed=10), workers=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert DatasetConfig.from_json(manifest["config"]) == cfg


def test_cli_with_two_worker_processes_matches_one_process(reference_set, tmp_path):
    _, cfg, d = reference_set
    args = ["--count", "5", "--shard-size", "2", "--size", "48", "--seed", "9", "--sampler", "gaussian",
            "--bank-size", "2", "--texture-size", "64", "--no-progress", "--workers", "2"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "digitaltwin_jax.synth.cli", "--out", str(tmp_path), *args],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["complete"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert DatasetConfig.from_json(manifest["config"]) == cfg
    e = _all(tmp_path, cfg)
    for k in d:
        np.testing.assert_array_equal(d[k], e[k], err_msg=k)


def test_cli_errors(tmp_path, capsys):
    from digitaltwin_jax.synth.cli import main

    assert main(["--out", str(tmp_path), "--workers", "0"]) == 1
    assert "workers" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--count", "0", "--sampler", "gaussian"]) == 1
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--eyes", "glass"])
