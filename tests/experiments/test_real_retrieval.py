"""experiments/real_retrieval.py (fidelity set (c)(i)): rank-1 with shared ties, the person-level
bootstrap, and the same-photograph filter (a recrop / rescale / mirror image of one photo is caught,
another photo is not)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import ROOT, load  # noqa: E402

X = load("real_retrieval")


def test_rank1_hits_chance_and_ties():
    person = np.array([0, 0, 1, 1, 2])
    d = np.array([[0, 1, 5, 5, 5],
                  [1, 0, 2, 3, 4],
                  [5, 2, 0, 2, 6],   # photo 2: photo 1 (other person) and photo 3 (same) tie at 2
                  [5, 3, 2, 0, 1],   # photo 3: nearest is photo 4 (other person)
                  [5, 4, 6, 1, 0]], float)
    cand = [np.array([j for j in range(5) if j != q]) for q in range(5)]
    hits, chance = X._rank1(d, person, cand)
    np.testing.assert_allclose(hits, [1.0, 1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(chance, [0.25, 0.25, 0.25, 0.25, 0.0])


def test_bootstrap_over_persons():
    hits = np.array([1.0, 1.0, 0.0, 1.0])
    chance = np.full(4, 0.25)
    groups = np.array([0, 0, 1, 2])
    r = X._bootstrap_diff(hits, chance, groups, reps=500)
    assert r["mean"] == pytest.approx(0.5)  # (3 - 1) / 4
    assert r["lo"] <= r["mean"] <= r["hi"] and r["persons"] == 3 and r["queries"] == 4
    sure = X._bootstrap_diff(np.ones(6), np.zeros(6), np.arange(6) // 2, reps=200)
    assert sure["lo"] == sure["hi"] == 1.0


def test_same_photograph_filter():
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.regressor.data import _default_frontend

    img = read_image(ROOT / "examples" / "astronaut.png")
    h, w = img.shape[:2]
    crop = np.ascontiguousarray(img[h // 10:, w // 20: w - w // 20])  # recropped ...
    import cv2

    crop = cv2.resize(crop, (crop.shape[1] * 3 // 4, crop.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)  # ... rescaled
    mirror = np.ascontiguousarray(crop[:, ::-1])  # the recrop, mirrored
    other = read_image(ROOT / "examples" / "grace_hopper.jpg")
    faces = {}
    for name, im in (("img", img), ("crop", crop), ("other", other)):
        fe = _default_frontend(im)
        assert fe is not None, name
        faces[name] = X._aligned_face(im, fe[1])
    assert float(np.sum(faces["img"] * faces["crop"])) > X.SAME_PHOTO_NCC
    assert float(np.sum(faces["img"] * faces["other"])) < X.SAME_PHOTO_NCC
    # a mirrored copy is caught by comparing its mirror image (as the build does)
    back = np.ascontiguousarray(mirror[:, ::-1])
    fe_m = _default_frontend(back)
    assert float(np.sum(X._aligned_face(back, fe_m[1]) * faces["img"])) > X.SAME_PHOTO_NCC
