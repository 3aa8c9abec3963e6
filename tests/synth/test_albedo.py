"""Procedural albedo maps: UV geometry, determinism, tone ordering, chart padding."""
import numpy as np

from digitaltwin_jax.render.colorspace import srgb_to_linear
from digitaltwin_jax.synth.albedo import procedural_albedo, procedural_bank, uv_geometry
from digitaltwin_jax.texture.skin import SkinParams, sample_skin_params


def test_uv_geometry_positions_lie_on_the_mesh(low_model):
    m = low_model
    size = 256
    g = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, size)
    assert g.positions.shape == (g.mask.sum(), 3)
    flat = np.cumsum(g.mask.ravel()) - 1
    rng = np.random.default_rng(0)
    checked = 0
    for f in rng.choice(len(m.faces), 300, replace=False):
        # independent barycentrics of the texel centres inside this UV triangle
        t = m.uvs[m.uv_faces[f]].astype(np.float64) * [size, -size] + [0, size]  # (3, 2) pixels
        lo = np.floor(t.min(0)).astype(int)
        hi = np.ceil(t.max(0)).astype(int)
        for r in range(max(lo[1], 0), min(hi[1], size)):
            for c in range(max(lo[0], 0), min(hi[0], size)):
                p = np.array([c + 0.5, r + 0.5])
                A = np.array([t[1] - t[0], t[2] - t[0]]).T
                b12 = np.linalg.solve(A, p - t[0])
                b = np.array([1 - b12.sum(), *b12])
                if (b > 1e-3).all():
                    assert g.mask[r, c]
                    want = b @ m.vertices[m.faces[f]].astype(np.float64)
                    np.testing.assert_allclose(g.positions[flat[r * size + c]], want, atol=1e-3)
                    checked += 1
    assert checked > 200


def test_maps_are_deterministic_and_tones_ordered(low_model):
    m = low_model
    g = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 128)
    rng = np.random.default_rng(3)
    p = sample_skin_params(rng, tone=0.1)
    a = procedural_albedo(g, p)
    b = procedural_albedo(g, p)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    lum = []
    for t in (0.05, 0.35, 0.65, 0.95):
        q = SkinParams(tone=t, undertone=0.0, redness=0.3, hair_color=(30.0, 20.0, 15.0), hair=False, hairline=0.0,
                       brow_density=0.8, stubble=0.0, seed=1)
        img = srgb_to_linear(procedural_albedo(g, q) / 255.0)
        # mean luminance of the cheek-height face skin (no hair, brows or lips)
        lum.append((img[g.mask] @ [0.2126, 0.7152, 0.0722]).mean())
    assert np.all(np.diff(lum) < 0)


def test_charts_are_padded(low_model):
    m = low_model
    g = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 128)
    bank = procedural_bank(g, 2, seed=1)
    assert bank.maps.shape == (2, 128, 128, 3) and len(bank.ids) == 2
    assert bank.specular.shape == (128, 128) and np.isfinite(bank.specular).all()
    # texels just outside the charts are not black (bilinear lookups at seams stay skin-coloured)
    import cv2

    ring = cv2.dilate(g.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~g.mask
    assert bank.maps[0][ring].min() > 0
