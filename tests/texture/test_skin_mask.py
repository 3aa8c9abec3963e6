"""texture.skin_mask: the face oval without eyes, brows and lips (checked at landmark-defined points)."""
import numpy as np

from digitaltwin_jax.model import load_head_model
from digitaltwin_jax.texture.face_region import face_region_mask
from digitaltwin_jax.texture.skin_mask import skin_mask


def _landmarks(hw=(200, 160)):
    m = load_head_model("low")
    p = m.vertices[m.landmark_indices] * [1.0, -1.0, -1.0] + [0.0, 0.0, 500.0]
    f = 600.0
    return f * p[:, :2] / p[:, 2:] + [hw[1] / 2, hw[0] / 2]


def test_skin_mask_leaves_out_eyes_brows_and_lips_and_keeps_the_cheeks():
    hw = (200, 160)
    lm = _landmarks(hw)
    mask = skin_mask(lm, hw)
    assert mask.dtype == bool and mask.shape == hw
    assert not np.any(mask & ~face_region_mask(lm, hw))
    px = lambda p: mask[int(p[1]), int(p[0])]  # noqa: E731
    for part in (range(36, 42), range(42, 48), range(17, 22), range(22, 27), range(48, 60)):
        assert not px(lm[list(part)].mean(axis=0)), part
    cheek_r = 0.5 * (lm[2] + lm[31])  # between the jaw and the nose
    cheek_l = 0.5 * (lm[14] + lm[35])
    assert px(cheek_r) and px(cheek_l)


def test_skin_mask_with_the_photo_drops_hair_coloured_pixels_only_inside_the_oval():
    hw = (200, 160)
    lm = _landmarks(hw)
    img = np.full(hw + (3,), (200, 150, 120), np.uint8)
    with_photo = skin_mask(lm, image=img)
    assert not np.any(with_photo & ~skin_mask(lm, hw))
