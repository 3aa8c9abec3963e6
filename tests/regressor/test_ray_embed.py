"""The front-end cache computed on Ray (local, 2 CPUs): the same rows as the local path, resumable, a
failing shard recorded while the others are cached; the shipped dlib front end on a real face."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax.regressor.data import frontend_cache, load_frontend_cache

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


def _write_set(root, images):
    """A synthetic-set folder (the keys the front end reads), one shard per 3 images."""
    root.mkdir()
    names = []
    for k, s in enumerate(range(0, len(images), 3)):
        idx = np.arange(s, min(len(images), s + 3))
        names.append(f"shard_{k:05d}.npz")
        np.savez(root / names[-1], index=idx.astype(np.int64), images=np.stack([images[i] for i in idx]))
    (root / "manifest.json").write_text(json.dumps({"config": {"seed": 1}, "shards": names}))


def index_frontend(image):
    """Reads the image index back from pixel (0, 0); no face in image 4; image 7 breaks it."""
    i = int(image[0, 0, 0])
    if i == 7:
        raise ValueError("broken image 7")
    if i == 4:
        return None
    return np.arange(4, dtype=np.float32) + i, np.full((68, 2), float(i), np.float32)


def _index_images(n):
    imgs = np.zeros((n, 8, 8, 3), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n)
    return list(imgs)


@pytest.fixture(scope="module")
def embed_ray(ray_local):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module
    return ray_local


def test_ray_cache_equals_local_and_records_failed_shard(embed_ray, tmp_path):
    from digitaltwin_jax.regressor.ray_embed import embed_on_ray

    _write_set(tmp_path / "set", _index_images(9))  # shards {0,1,2} {3,4,5} {6,7,8}
    with pytest.raises(RuntimeError, match="shard_00002.npz: ValueError: broken image 7"):
        embed_on_ray(tmp_path / "set", workers=2, frontend=index_frontend, progress=False)
    cache = load_frontend_cache(tmp_path / "set")  # the two good shards were saved
    np.testing.assert_array_equal(cache["index"], np.arange(6))
    np.testing.assert_array_equal(cache["embeddings"][5], np.arange(4) + 5.0)
    assert np.all(np.isnan(cache["embeddings"][4])) and np.all(np.isnan(cache["landmarks"][4]))
    # resume with a limit that leaves the broken image out: only image 6 is computed
    n, found = embed_on_ray(tmp_path / "set", workers=2, frontend=index_frontend, progress=False, limit=7)
    assert (n, found) == (7, 6)
    np.testing.assert_array_equal(load_frontend_cache(tmp_path / "set")["index"], np.arange(7))


def test_default_frontend_on_ray_matches_local(embed_ray, tmp_path):
    from PIL import Image

    from digitaltwin_jax.regressor.ray_embed import embed_on_ray

    face = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    blank = np.full_like(face, 128)
    _write_set(tmp_path / "a", [face, blank])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert frontend_cache(tmp_path / "a", progress=False) == (2, 1)
    assert embed_on_ray(tmp_path / "b", workers=1, progress=False) == (2, 1)
    a, b = load_frontend_cache(tmp_path / "a"), load_frontend_cache(tmp_path / "b")
    for k in ("index", "embeddings", "landmarks"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert np.all(np.isfinite(a["embeddings"][0])) and np.all(np.isnan(a["embeddings"][1]))
