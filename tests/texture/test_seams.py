"""Chart padding: the precomputed dilation plan against a brute-force nearest-texel search."""
import numpy as np
import pytest

from digitaltwin_jax.texture.seams import dilate_texture, dilation_plan


def _brute(tex, valid, width):
    h, w = valid.shape
    vr, vc = np.nonzero(valid)
    out = tex.copy()
    for r in range(h):
        for c in range(w):
            if valid[r, c]:
                continue
            d = np.hypot(vr - r, vc - c)
            if d.min() <= width:
                out[r, c] = tex[vr[d.argmin()], vc[d.argmin()]]
            else:
                out[r, c] = tex[valid].mean(axis=0)
    return out


def test_plan_matches_brute_force_nearest_texel():
    rng = np.random.default_rng(1)
    valid = np.zeros((24, 24), bool)
    valid[4:9, 3:10] = True
    valid[15:20, 14:21] = True
    tex = rng.uniform(size=(24, 24, 3)).astype(np.float32)
    out = dilate_texture(tex, valid, 3)
    ref = _brute(tex, valid, 3)
    # the nearest valid texel is unique except on ties; compare where the two charts are not tied
    assert np.allclose(out[valid], tex[valid])
    far_from_ties = np.abs(out - ref).max(axis=2) < 1e-6
    assert far_from_ties.mean() > 0.95
    plan = dilation_plan(valid, 3)
    assert np.array_equal(dilate_texture(tex, valid, 3, plan=plan), out)
    assert np.allclose(dilate_texture(tex[..., 0], valid, 3, plan=plan), out[..., 0], atol=1e-6)
    assert np.array_equal(dilate_texture(tex, valid, 3, fill_rest=False, plan=plan)[0, 23], np.zeros(3))


def test_in_place_padding_is_the_same_as_padding_a_copy():
    rng = np.random.default_rng(5)
    valid = np.zeros((40, 50), bool)
    valid[5:20, 8:30] = True
    valid[25:35, 33:45] = True
    tex = np.where(valid[..., None], rng.uniform(0, 1, (40, 50, 3)), 0.0).astype(np.float32)
    ref = dilate_texture(tex, valid, 3)
    # reference by hand for one padded texel: the nearest valid texel's colour
    np.testing.assert_array_equal(ref[4, 10], tex[5, 10])
    work = tex.copy()
    out = dilate_texture(work, valid, 3, in_place=True)
    assert out is work
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match="in_place"):
        dilate_texture(tex.astype(np.float64), valid, 3, in_place=True)
