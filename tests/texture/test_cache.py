"""TextureCache: cached photo-independent pieces give the same texture as computing them afresh."""
import numpy as np
import pytest

from digitaltwin_jax import load_head_model
from digitaltwin_jax.texture.bank import default_texture_bank
from digitaltwin_jax.texture.cache import TextureCache
from digitaltwin_jax.texture.pipeline import TextureConfig, build_texture
from digitaltwin_jax.texture.seams import seam_pairs
from digitaltwin_jax.texture.uv import uv_sampling


def _frontal_camera(model):
    v = np.asarray(model.vertices, np.float64)
    R = np.diag([-1.0, -1.0, 1.0]) @ np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]])  # face toward -z cam
    vc = v @ R.T + np.array([0.0, 0.0, 600.0])
    K = np.array([[900.0, 0, 128], [0, 900.0, 128], [0, 0, 1]])
    return vc, K


def test_cached_pieces_equal_fresh_computation():
    model = load_head_model("low")
    cache = TextureCache()
    s = cache.sampling(model, 128)
    ref = uv_sampling(model.uvs, model.uv_faces, 128)
    assert np.array_equal(s.texels, ref.texels) and np.array_equal(s.bary, ref.bary)
    assert cache.sampling(model, 128) is s and cache.hits == 1
    assert np.array_equal(cache.seam_pairs(model, 128), seam_pairs(ref, model.vertices, model.faces))
    with pytest.raises(ValueError):
        s.bary[0, 0] = 1.0  # cached arrays are read-only: no caller can corrupt the next avatar
    # a freshly built (equal) default bank hits the baked entry of the first one
    t1 = cache.bank_texture(default_texture_bank(), 3, model, 64, 64)
    t2 = cache.bank_texture(default_texture_bank(), 3, model, 64, 64)
    assert t1 is t2
    assert np.array_equal(t1, default_texture_bank().texture(3, model, 64, gen_size=64))


def test_build_texture_with_cache_is_identical():
    model = load_head_model("low")
    rng = np.random.default_rng(0)
    image = (rng.uniform(size=(256, 256, 3)) * 255).astype(np.uint8)
    vc, K = _frontal_camera(model)
    cfg = TextureConfig(size=128)
    fresh = build_texture(image, vc, K, model, config=cfg)
    cache = TextureCache()
    for _ in range(2):  # the second call uses only cached pieces
        cached = build_texture(image, vc, K, model, config=cfg, cache=cache)
        assert np.array_equal(cached.diffuse, fresh.diffuse)
        assert np.array_equal(cached.confidence, fresh.confidence)
    assert fresh.confidence.max() > 0.5  # the camera really sees the face
    assert cache.hits > 0


def test_max_entries_drops_least_recently_used():
    model = load_head_model("low")
    cache = TextureCache(max_entries=2)
    a = cache.sampling(model, 16)
    cache.sampling(model, 32)
    cache.sampling(model, 16)  # 16 is now the most recent
    cache.sampling(model, 64)  # drops 32
    assert len(cache) == 2 and cache.sampling(model, 16) is a
    with pytest.raises(ValueError):
        TextureCache(max_entries=0)


def test_disk_cache_round_trip_and_unreadable_file(tmp_path):
    model = load_head_model("low")
    first = TextureCache(directory=tmp_path)
    s1, p1 = first.sampling(model, 64), first.seam_pairs(model, 64)
    d1 = first.dilation(model, 64, 3)
    b1 = first.bank_texture(default_texture_bank(), 2, model, 64, 64)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 and all(f.endswith(".npz") for f in files)
    # a new cache (a new process) loads them: equal to computing them afresh
    second = TextureCache(directory=tmp_path)
    ref = uv_sampling(model.uvs, model.uv_faces, 64)
    s2 = second.sampling(model, 64)
    assert s2.size == 64 and s2.texels.dtype == ref.texels.dtype
    for a, b in ((s2.texels, ref.texels), (s2.face, ref.face), (s2.bary, ref.bary), (s2.chart_mask, ref.chart_mask)):
        assert np.array_equal(a, b)
    assert np.array_equal(second.seam_pairs(model, 64), seam_pairs(ref, model.vertices, model.faces))
    d2 = second.dilation(model, 64, 3)
    assert d2.shape == d1.shape and np.array_equal(d2.source, d1.source) and np.array_equal(d2.rest, d1.rest)
    assert np.array_equal(d2.fill, d1.fill) and d2.fill.dtype == d2.rest.dtype == np.int64
    with np.load(next(tmp_path.glob("sampling-*.npz"))) as z:  # indices on disk in half the bytes
        assert z["texels"].dtype == np.int32
    assert np.array_equal(second.bank_texture(default_texture_bank(), 2, model, 64, 64), b1)
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # nothing rewritten or added
    # a damaged file is recomputed (same values) and rewritten
    victim = next(p for p in tmp_path.iterdir() if p.name.startswith("sampling-"))
    victim.write_bytes(b"garbage")
    s3 = TextureCache(directory=tmp_path).sampling(model, 64)
    assert np.array_equal(s3.bary, ref.bary) and victim.stat().st_size > 1000
    assert np.array_equal(p1, seam_pairs(ref, model.vertices, model.faces))
