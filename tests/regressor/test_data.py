"""Data layer: subject-disjoint split, the synthetic-shard reader and its resumable front-end cache."""
import json

import numpy as np
import pytest

from digitaltwin_jax.regressor.data import (
    FRONTEND_CACHE,
    frontend_cache,
    head_ids,
    load_eval_data,
    load_frontend_cache,
    load_synth_dataset,
    make_dataset,
    split_by_subject,
)


def _write_set(root, n=10, v=12, shard_size=4, repeat_heads=False):
    """A folder in the layout of digitaltwin_jax.synth.dataset (only the keys the regressor reads)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    heads = rng.normal(size=(n, v, 3)).astype(np.float32)
    if repeat_heads:
        heads[1::2] = heads[0::2]
    shards = []
    for k, s in enumerate(range(0, n, shard_size)):
        idx = np.arange(s, min(n, s + shard_size))
        imgs = np.zeros((idx.size, 8, 8, 3), np.uint8)
        imgs[:, 0, 0, 0] = idx  # the fake front end reads the index back from the pixel
        name = f"shard_{k:05d}.npz"
        np.savez(root / name, index=idx.astype(np.int64), images=imgs, vertices=heads[idx],
                 expression=np.zeros((idx.size, 5), np.float32))
        shards.append(name)
    (root / "manifest.json").write_text(json.dumps({"config": {"seed": 5, "sampler": "dr", "count": n}, "shards": shards}))
    return heads


def _fake_frontend(calls):
    def fe(image):
        i = int(image[0, 0, 0])
        calls.append(i)
        if i == 3:
            return None  # no face in image 3
        return np.full(4, float(i), np.float32), np.full((68, 2), float(i), np.float32)

    return fe


def test_frontend_cache_is_resumable_and_complete(tmp_path):
    root = tmp_path / "set"
    heads = _write_set(root)
    calls = []
    assert frontend_cache(root, limit=6, frontend=_fake_frontend(calls), save_every=2, progress=False) == (6, 5)
    assert sorted(calls) == list(range(6))
    # a rerun computes only the missing images
    calls.clear()
    assert frontend_cache(root, frontend=_fake_frontend(calls), progress=False) == (10, 9)
    assert sorted(calls) == [6, 7, 8, 9]
    cache = load_frontend_cache(root)
    np.testing.assert_array_equal(cache["index"], np.arange(10))
    assert np.all(np.isnan(cache["embeddings"][3])) and cache["embeddings"][7, 0] == 7.0
    ds, info = load_synth_dataset(root)
    assert len(ds) == 9 and info["num_with_face"] == 9 and info["seed"] == 5 and info["sampler"] == "dr"
    assert "set/3" not in ds.sample_ids
    np.testing.assert_array_equal(ds.vertices[ds.sample_ids.tolist().index("set/7")], heads[7])
    ev, _ = load_eval_data(root)
    assert len(ev) == 10 and ev.valid().sum() == 9 and tuple(ev.image_sizes[0]) == (8, 8)
    np.testing.assert_array_equal(ev.landmarks[5], np.full((68, 2), 5.0))


def test_missing_cache_is_a_clear_error(tmp_path):
    root = tmp_path / "set"
    _write_set(root)
    with pytest.raises(FileNotFoundError, match="regressor embed"):
        load_synth_dataset(root)
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_synth_dataset(tmp_path)
    assert not (root / FRONTEND_CACHE).exists()


def test_head_ids_and_subject_disjoint_split(tmp_path):
    root = tmp_path / "set"
    heads = _write_set(root, n=12, repeat_heads=True)
    ids = head_ids(heads)
    np.testing.assert_array_equal(ids, np.repeat(np.arange(6), 2))
    frontend_cache(root, frontend=_fake_frontend([]), progress=False)
    ds, _ = load_synth_dataset(root, tag=2)
    assert np.all(ds.subject_ids >> 32 == 2)
    a, b = split_by_subject(ds, 0.34, seed=1)
    assert len(a) + len(b) == len(ds) and len(b) > 0
    assert not set(a.subject_ids) & set(b.subject_ids)
    a2, b2 = split_by_subject(ds, 0.34, seed=1)
    np.testing.assert_array_equal(b.sample_ids, b2.sample_ids)


def test_dataset_validation():
    with pytest.raises(ValueError, match="inconsistent"):
        make_dataset(np.zeros((3, 4)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        make_dataset(np.full((2, 4), np.nan), np.zeros((2, 5, 3)))


def test_frontend_cache_records_its_front_end_and_refuses_another(tmp_path):
    root = tmp_path / "set"
    _write_set(root)
    calls = []
    cfg_a = {"name": "fake", "upsample": 1}
    frontend_cache(root, limit=4, frontend=_fake_frontend(calls), frontend_config=cfg_a, progress=False)
    with np.load(root / FRONTEND_CACHE) as z:
        assert json.loads(str(z["meta"]))["frontend_config"] == cfg_a
    # the same configuration resumes (only the missing images are computed)
    calls.clear()
    assert frontend_cache(root, frontend=_fake_frontend(calls), frontend_config=dict(cfg_a), progress=False) == (10, 9)
    assert sorted(calls) == [4, 5, 6, 7, 8, 9]
    # another configuration is refused with both named, and the cache is left as it was
    before = (root / FRONTEND_CACHE).read_bytes()
    cfg_b = {"name": "fake", "upsample": 2}
    with pytest.raises(ValueError, match=r"upsample.*1.*not by.*upsample.*2.*recompute=True"):
        frontend_cache(root, frontend=_fake_frontend([]), frontend_config=cfg_b, progress=False)
    assert (root / FRONTEND_CACHE).read_bytes() == before
    # ... also a different custom callable without an explicit configuration (its module.qualname)
    def other(image):
        return np.zeros(4, np.float32), np.zeros((68, 2), np.float32)

    with pytest.raises(ValueError, match="other"):
        frontend_cache(root, frontend=other, progress=False)
    # recompute=True starts over with the new front end: every image recomputed, meta replaced
    calls.clear()
    assert frontend_cache(root, frontend=_fake_frontend(calls), frontend_config=cfg_b, recompute=True,
                          progress=False) == (10, 9)
    assert sorted(calls) == list(range(10))
    with np.load(root / FRONTEND_CACHE) as z:
        assert json.loads(str(z["meta"]))["frontend_config"] == cfg_b


def test_frontend_cache_default_config_names_the_shipped_settings(tmp_path):
    from digitaltwin_jax.frontend.pipeline import DetectionConfig
    from digitaltwin_jax.regressor.data import _frontend_config

    cfg = _frontend_config(None, None)
    assert cfg["detection"]["coarse_side"] == DetectionConfig().coarse_side
    assert "dlib_face_recognition_resnet_model_v1.dat" in cfg["models"]
    # a legacy cache (meta without a configuration) made by the same default label resumes
    root = tmp_path / "set"
    _write_set(root)
    frontend_cache(root, limit=2, frontend=_fake_frontend([]), progress=False)
    import io

    with np.load(root / FRONTEND_CACHE) as z:
        arrays = {k: z[k] for k in ("index", "embeddings", "landmarks")}
    buf = io.BytesIO()
    np.savez(buf, **arrays, meta=json.dumps({"frontend": "fe"}))  # the old format: fe.__name__ only
    (root / FRONTEND_CACHE).write_bytes(buf.getvalue())
    calls = []
    assert frontend_cache(root, limit=4, frontend=_fake_frontend(calls), progress=False) == (4, 3)
    assert sorted(calls) == [2, 3]


@pytest.mark.parametrize("threads", [1, 4])
def test_parallel_shard_reader_keeps_shard_order(tmp_path, threads):
    from digitaltwin_jax.regressor.data import _read_shards

    heads = _write_set(tmp_path / "set", n=19, shard_size=3)  # 7 shards, the last one short
    got = _read_shards(tmp_path / "set", ("index", "vertices"), None, threads=threads)
    np.testing.assert_array_equal(got["index"], np.arange(19))
    np.testing.assert_array_equal(got["vertices"], heads)
    part = _read_shards(tmp_path / "set", ("index", "vertices"), 8, threads=threads)
    np.testing.assert_array_equal(part["index"], np.arange(8))
    np.testing.assert_array_equal(part["vertices"], heads[:8])
