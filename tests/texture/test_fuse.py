"""Texture fusion: per-texel weights from confidence and resolution, against a loop written out."""
import numpy as np
import pytest

from digitaltwin_jax.texture.fuse import fuse_textures, view_resolution


def test_fusion_matches_a_texel_loop():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, size=(3, 6, 6, 3)).astype(np.float32)
    c = rng.uniform(0, 1, size=(3, 6, 6)).astype(np.float32)
    c[:, 0, 0] = 0.0  # unseen everywhere
    c[1, 2, 2] = c[2, 2, 2] = 0.0  # seen by view 0 only
    r = np.array([2.0, 1.0, 4.0])
    fused, conf, best = fuse_textures(d, c, r, power=2.0)
    for i in range(6):
        for j in range(6):
            w = [(c[v, i, j] * r[v] / 4.0) ** 2 for v in range(3)]
            if sum(w) == 0:
                ref = d[:, i, j].mean(axis=0)
                assert best[i, j] == -1
            else:
                ref = sum(w[v] * d[v, i, j] for v in range(3)) / sum(w)
                assert best[i, j] == int(np.argmax(w))
            np.testing.assert_allclose(fused[i, j], ref, rtol=1e-5, atol=1e-6)
            assert conf[i, j] == pytest.approx(c[:, i, j].max())
    np.testing.assert_allclose(fused[2, 2], d[0, 2, 2], atol=1e-6)  # the only view that sees it


def test_far_cheek_comes_from_the_other_view():
    # view 0 sees the left half, view 1 the right half: the fused map is each half's own view
    d = np.stack([np.full((4, 8, 3), 0.2, np.float32), np.full((4, 8, 3), 0.8, np.float32)])
    c = np.zeros((2, 4, 8), np.float32)
    c[0, :, :4] = 0.9
    c[1, :, 4:] = 0.9
    fused, _, best = fuse_textures(d, c)
    assert np.allclose(fused[:, :4], 0.2) and np.allclose(fused[:, 4:], 0.8)
    assert (best[:, :4] == 0).all() and (best[:, 4:] == 1).all()


def test_resolution_and_errors():
    v = np.array([[0.0, 0.0, 400.0], [10.0, 0.0, 500.0], [0.0, 10.0, 600.0]])
    K = np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]])
    assert view_resolution(v, K) == pytest.approx(1000.0 / 500.0)
    assert view_resolution(v, K, [True, False, False]) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="in front"):
        view_resolution(-v, K)
    with pytest.raises(ValueError, match="confidence"):
        fuse_textures(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="resolution"):
        fuse_textures(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4)), [1.0, 0.0])
