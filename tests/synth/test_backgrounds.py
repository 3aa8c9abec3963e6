"""Procedural and photo backgrounds."""
import numpy as np
import pytest

from digitaltwin_jax.synth.backgrounds import PROCEDURAL_KINDS, PhotoBackgrounds, procedural_background


@pytest.mark.parametrize("kind", PROCEDURAL_KINDS)
def test_each_kind_is_in_range_and_deterministic(kind):
    a, k = procedural_background(np.random.default_rng(4), 40, 56, kind)
    b, _ = procedural_background(np.random.default_rng(4), 40, 56, kind)
    assert k == kind and a.shape == (40, 56, 3) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0  # not a constant image


def test_random_kind_and_unknown_kind():
    kinds = {procedural_background(np.random.default_rng(s), 16, 16)[1] for s in range(60)}
    assert kinds == set(PROCEDURAL_KINDS)
    with pytest.raises(ValueError):
        procedural_background(np.random.default_rng(0), 16, 16, "moon")


def test_photo_backgrounds(tmp_path):
    import cv2

    img = np.zeros((60, 90, 3), np.uint8)
    img[:, :45] = (0, 0, 255)  # BGR red on the left
    cv2.imwrite(str(tmp_path / "a.png"), img)
    pb = PhotoBackgrounds.from_folder(tmp_path)
    out = pb.sample(np.random.default_rng(0), 32, 32)
    assert out.shape == (32, 32, 3) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(FileNotFoundError):
        PhotoBackgrounds.from_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        PhotoBackgrounds.from_folder(tmp_path / "empty")


def test_half_resolution_generation_keeps_size_and_range():
    a, _ = procedural_background(np.random.default_rng(1), 64, 80, "indoor", resolution_scale=0.5)
    assert a.shape == (64, 80, 3) and 0 <= a.min() and a.max() <= 1
    with pytest.raises(ValueError):
        procedural_background(np.random.default_rng(1), 64, 80, resolution_scale=0.0)
