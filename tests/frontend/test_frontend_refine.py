"""Chip geometry and the coarse-to-fine wrapper, checked with synthetic images and a fake predictor."""
from __future__ import annotations

import numpy as np
import pytest

from digitaltwin_jax.frontend.chips import apply_affine, invert_affine, similarity_chip
from digitaltwin_jax.frontend.landmarks68 import FLIP_PERMUTATION, INNER, JAW
from digitaltwin_jax.frontend.refine import CoarseToFinePredictor, RefineConfig, eye_line_angle


def _centroid(img):
    w = img.astype(np.float64)
    if w.ndim == 3:
        w = w.sum(axis=2)
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()  # corner convention


@pytest.mark.parametrize(
    "scale,angle,block",
    [(1.0, 0.0, 1), (2.5, 0.0, 1), (1.7, 0.4, 1), (1.3, -1.1, 1), (0.25, 0.0, 8), (0.4, 0.7, 8)],
)
def test_chip_maps_a_bright_block_where_the_affine_says(scale, angle, block):
    img = np.zeros((300, 400, 3), np.uint8)
    x0, y0 = 211, 143
    img[y0 : y0 + block, x0 : x0 + block] = 255
    true_center = np.array([x0 + block / 2.0, y0 + block / 2.0])
    chip, A = similarity_chip(img, center=(205.3, 150.8), scale=scale, angle=angle, size=64)
    assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8
    # independent form of the documented map: scale * R(-angle) (xy - center) + size / 2
    c, s = np.cos(-angle), np.sin(-angle)
    expected = scale * np.array([[c, -s], [s, c]]) @ (true_center - [205.3, 150.8]) + 32.0
    np.testing.assert_allclose(apply_affine(A, true_center), expected, atol=1e-9)
    np.testing.assert_allclose(_centroid(chip), expected, atol=0.15)
    np.testing.assert_allclose(apply_affine(invert_affine(A), expected), true_center, atol=1e-9)


def test_shrinking_chip_is_antialiased():
    # a 1-pixel checkerboard must average to mid-gray, not alias into stripes or moire
    img = ((np.indices((800, 800)).sum(0) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    chip, _ = similarity_chip(img, center=(400, 400), scale=0.1, angle=0.0, size=40)
    assert abs(chip.mean() - 127.5) < 3 and chip.std() < 6


def _fake_base(template):
    """A 'predictor' that ignores pixels and returns a fixed box-relative shape."""

    def base(image, box):
        b = np.asarray(box, np.float64)
        return (b[:2] + template * (b[2:] - b[:2])).astype(np.float32)

    return base


def _template(tilt):
    rng = np.random.default_rng(3)
    t = rng.uniform(0.2, 0.8, (68, 2))
    t[36:42] = [0.3, 0.4 - tilt]  # eyes: left image eye higher/lower by tilt
    t[42:48] = [0.7, 0.4 + tilt]
    return t


def test_single_pass_returns_template_in_the_input_box():
    t = _template(0.0)
    pred = CoarseToFinePredictor(_fake_base(t), RefineConfig(chip_size=100, flip_average=False, second_pass=False))
    box = np.array([50.0, 40.0, 130.0, 120.0])
    out = pred(np.zeros((200, 200, 3), np.uint8), box)
    np.testing.assert_allclose(out, box[:2] + t * 80.0, atol=1e-4)


def test_flip_average_of_template_is_its_mirror_average():
    t = _template(0.0)
    pred = CoarseToFinePredictor(_fake_base(t), RefineConfig(chip_size=100, flip_average=True, second_pass=False))
    box = np.array([50.0, 40.0, 130.0, 120.0])
    out = pred(np.zeros((200, 200, 3), np.uint8), box)
    mirrored = t.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    expected_t = 0.5 * (t + mirrored[FLIP_PERMUTATION])
    np.testing.assert_allclose(out, box[:2] + expected_t * 80.0, atol=1e-4)


def test_second_pass_is_taken_in_the_rotated_chip_for_inner_points_only():
    tilt = 0.05
    t = _template(tilt)
    pred = CoarseToFinePredictor(_fake_base(t), RefineConfig(chip_size=100, flip_average=False, second_pass=True))
    box = np.array([50.0, 40.0, 130.0, 120.0])
    out = pred(np.zeros((200, 200, 3), np.uint8), box)
    first = box[:2] + t * 80.0
    a = np.arctan2(2 * tilt, 0.4)  # eye-line angle of the first pass
    assert eye_line_angle(first) == pytest.approx(a)
    # in the rotated chip the template sits in an upright box; rotating back turns it by +a
    c = box[:2] + 40.0
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    second = (first - c) @ R.T + c
    np.testing.assert_allclose(out[JAW], first[JAW], atol=1e-4)
    np.testing.assert_allclose(out[INNER], second[INNER], atol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="chip_size"):
        RefineConfig(chip_size=4)
    with pytest.raises(ValueError, match="box"):
        CoarseToFinePredictor(_fake_base(_template(0)))(np.zeros((9, 9, 3), np.uint8), [5, 5, 5, 9])
    with pytest.raises(ValueError, match="scale"):
        similarity_chip(np.zeros((9, 9, 3), np.uint8), (4, 4), 0.0, 0.0, 8)
