"""io.cachedir.prune_other_versions: only old files of the same family written by other versions go."""
import os
import time

import numpy as np

from digitaltwin_jax.io.cachedir import PRUNE_MIN_AGE_S, prune_other_versions


def _touch(path, age_s):
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_prunes_only_old_files_of_the_family_from_other_versions(tmp_path):
    day = PRUNE_MIN_AGE_S
    old_other = _touch(tmp_path / "condensed-aaaa-1.npz", 2 * day)
    old_untagged = _touch(tmp_path / "condensed-0123456789abcdef0123.npz", 2 * day)  # before tags
    new_other = _touch(tmp_path / "condensed-aaaa-2.npz", 60)  # another installation, in use
    old_same = _touch(tmp_path / "condensed-bbbb-3.npz", 2 * day)  # this version: kept however old
    other_family = _touch(tmp_path / "sampling-aaaa-4.npz", 2 * day)
    other_suffix = _touch(tmp_path / "condensed-aaaa-5.txt", 2 * day)
    temp = _touch(tmp_path / ".condensed-aaaa-6.npz.tmp", 2 * day)
    gone = prune_other_versions(tmp_path, "condensed", "bbbb", ".npz")
    assert sorted(gone) == sorted([old_other, old_untagged])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in (new_other, old_same, other_family, other_suffix, temp))
    assert prune_other_versions(tmp_path / "missing", "condensed", "bbbb", ".npz") == []


def _double(x):
    return {"y": 2.0 * x}


def test_the_stores_prune_after_writing(tmp_path):
    from digitaltwin_jax.fitting import exported as E
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.texture.cache import TextureCache

    old_arrays = _touch(tmp_path / "t-0000000000000000-deadbeef.npz", 2 * PRUNE_MIN_AGE_S)
    old_program = _touch(tmp_path / ("program-0000000000000000-" + "0" * 64 + ".jaxexport"),
                         2 * PRUNE_MIN_AGE_S)
    untagged_program = _touch(tmp_path / ("1" * 64 + ".jaxexport"), 2 * PRUNE_MIN_AGE_S)  # before the tags
    store = E.ExportStore(directory=tmp_path)
    E.arrays("t", (np.ones(2),), lambda: {"x": np.zeros(1)}, store=store)
    assert not old_arrays.exists() and old_program.exists()  # only the family that was written
    assert len(list(tmp_path.glob("t-*.npz"))) == 1
    E.call(_double, (np.ones(3, np.float32),), ("test_double",), store=store)  # writes a program
    assert not old_program.exists() and not untagged_program.exists()
    assert len(list(tmp_path.glob("program-*.jaxexport"))) == 1
    tex = tmp_path / "tex"
    tex.mkdir()
    old_format = _touch(tex / "sampling-0123456789abcdef0123456789abcdef.npz", 2 * PRUNE_MIN_AGE_S)
    TextureCache(directory=tex).sampling(load_head_model("low"), 16)
    assert not old_format.exists() and len(list(tex.glob("sampling-v*-*.npz"))) == 1
