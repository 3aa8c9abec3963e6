"""Realism check: the front end's dlib detector finds rendered faces and its landmarks agree with the
projected ground truth (20 renders here; the 200-render number is in the README)."""
import numpy as np
import pytest

from digitaltwin_jax.synth.realism import realism_check
from digitaltwin_jax.synth.scene import SceneConfig, sample_scene
from digitaltwin_jax.synth.shapes import GaussianIdentitySource


def test_detector_finds_renders_and_landmarks_agree(low_model, renderer):
    pytest.importorskip("dlib")
    src = GaussianIdentitySource(low_model)
    cfg = SceneConfig(image_size=256)
    imgs, lms = [], []
    for i in range(20):
        s = sample_scene(i, 2024, cfg, src, low_model, len(renderer.bank))
        r = renderer.render(s)
        imgs.append(r.image)
        lms.append(r.landmarks)
    rep = realism_check(np.stack(imgs), np.stack(lms))
    assert rep.detection_rate >= 0.95, rep.as_dict()
    assert rep.mean_nme < 5.0, rep.as_dict()


def test_realism_check_on_a_blank_image_detects_nothing():
    pytest.importorskip("dlib")
    img = np.full((1, 96, 96, 3), 128, np.uint8)
    lm = np.tile(np.linspace(20, 70, 68)[:, None], (1, 1, 2))
    rep = realism_check(img, lm)
    assert rep.detection_rate == 0.0 and np.isnan(rep.nme).all()
    with pytest.raises(ValueError):
        realism_check(img, lm[:, :10])
