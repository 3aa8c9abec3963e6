"""Texture bank: selection rules, persistence, procedural skin model."""
import types

import numpy as np
import pytest

from digitaltwin_jax.render import uv_sphere
from digitaltwin_jax.texture import (
    BankEntry,
    SkinLayout,
    SkinParams,
    TextureBank,
    bake_procedural,
    default_texture_bank,
    embed_entries,
    load_bank,
    save_bank,
    skin_base_color,
)


def _lum(c):
    return 0.2126 * c[..., 0] + 0.7152 * c[..., 1] + 0.0722 * c[..., 2]


def test_default_bank_is_deterministic_and_spans_light_to_dark():
    a, b, c = default_texture_bank(10, seed=0), default_texture_bank(10, seed=0), default_texture_bank(10, seed=1)
    assert [e.params for e in a.entries] == [e.params for e in b.entries]
    assert [e.params for e in a.entries] != [e.params for e in c.entries]
    lum = np.array([_lum(e.base_color) for e in a.entries])
    assert (np.diff(lum) < 0).all()
    assert lum[0] > 0.7 and lum[-1] < 0.2


def test_identity_rule_uses_l1_distance_and_only_entries_with_embeddings():
    ea = np.zeros(128, np.float32)
    ea[:2] = 1.0  # L1 = 2.0, L2 = 1.41 from the origin
    eb = np.zeros(128, np.float32)
    eb[0] = 1.9  # L1 = 1.9, L2 = 1.9
    bank = TextureBank((
        BankEntry("no-embedding", params=SkinParams(tone=0.5), base_color=skin_base_color(0.5)),
        BankEntry("a", embedding=ea, params=SkinParams(tone=0.1)),
        BankEntry("b", embedding=eb, params=SkinParams(tone=0.9)),
    ))
    assert bank.select(np.zeros(128)) == (2, "identity")  # L2 would pick "a"
    q = ea + 0.01
    assert bank.select(q) == (1, "identity")
    assert np.isnan(bank.embeddings[0]).all()
    with pytest.raises(ValueError, match="embedding"):
        bank.select(np.zeros(64))


def test_tone_rule_when_no_embedding_is_available():
    bank = default_texture_bank(8, seed=3)
    for k in (0, 3, 7):
        observed = bank.entries[k].base_color + 0.005
        assert bank.select(None, observed) == (k, "tone")
        # a query embedding does not help when no entry has one
        assert bank.select(np.ones(128), observed) == (k, "tone")
    assert bank.select() == (0, "default")


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    bank = default_texture_bank(3, seed=5)
    tex = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    emb = rng.standard_normal(128).astype(np.float32)
    bank = bank.with_entry(BankEntry("photo", embedding=emb, texture=tex,
                                     base_color=np.array([0.5, 0.4, 0.3], np.float32)))
    path = tmp_path / "bank.npz"
    save_bank(path, bank)
    back = load_bank(path)
    assert [e.name for e in back.entries] == [e.name for e in bank.entries]
    assert [e.params for e in back.entries[:3]] == [e.params for e in bank.entries[:3]]
    np.testing.assert_array_equal(back.entries[3].texture, tex)
    np.testing.assert_array_equal(back.entries[3].embedding, emb)
    assert back.entries[0].embedding is None and back.entries[3].params is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.npz"]  # no temp file left


def _sphere_model():
    v, f, uv, uvf = uv_sphere(24, 48, radius=90.0)
    return types.SimpleNamespace(vertices=v, faces=f, uvs=uv, uv_faces=uvf, eye_mask=np.zeros(len(v), bool))


def test_procedural_skin_colour_regions_and_determinism():
    m = _sphere_model()
    p = SkinParams(tone=0.3, undertone=0.2, lip_tint=0.8, hair_darkness=0.8, seed=4)
    # lips: a polygon on the front (+z) of the sphere; hair above y = 40 at the front
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lips = np.stack([20 * np.cos(ang), -30 + 8 * np.sin(ang), np.full(12, 80.0)], 1)
    layout = SkinLayout(lip_polygon=lips, hairline=(40.0, 40.0, 40.0), centre=np.zeros(3))
    t1 = bake_procedural(p, m.vertices, m.faces, m.uvs, m.uv_faces, 128, layout=layout, gen_size=128)
    t2 = bake_procedural(p, m.vertices, m.faces, m.uvs, m.uv_faces, 128, layout=layout, gen_size=128)
    np.testing.assert_array_equal(t1, t2)
    assert t1.shape == (128, 128, 3) and t1.dtype == np.float32
    assert t1.min() >= 0 and t1.max() <= 1
    # texel positions on the sphere (equirectangular layout)
    rows, cols = np.mgrid[0:128, 0:128]
    lon = (cols + 0.5) / 128 * 2 * np.pi
    lat = ((1 - (rows + 0.5) / 128) - 0.5) * np.pi
    x, y, z = 90 * np.cos(lat) * np.sin(lon), 90 * np.sin(lat), 90 * np.cos(lat) * np.cos(lon)
    lip = (np.abs(x) < 12) & (np.abs(y + 30) < 4) & (z > 0)
    skin = (np.abs(y) < 20) & (z > 60) & ~lip
    hair = y > 55
    base = skin_base_color(p.tone, p.undertone)
    np.testing.assert_allclose(t1[skin].mean(axis=0), base, atol=0.06)
    ratio = lambda c: c[..., 1] / c[..., 0]  # noqa: E731  green / red: lips are redder
    assert ratio(t1[lip]).mean() < ratio(t1[skin]).mean() - 0.08
    assert _lum(t1[hair]).mean() < 0.85 * _lum(t1[skin]).mean()


def test_embed_entries_with_a_given_embedder():
    m = _sphere_model()
    bank = default_texture_bank(3, seed=0)
    calls = []

    def fake_embedder(img):
        calls.append(img.shape)
        assert img.dtype == np.uint8
        if len(calls) == 2:
            return None  # "no face found"
        return np.full(128, img.mean() / 255.0, np.float32)

    out = embed_entries(bank, m, fake_embedder, image_size=64, tex_size=64)
    assert len(calls) == 3 and calls[0] == (64, 64, 3)
    assert out.entries[0].embedding is not None and out.entries[1].embedding is None
    assert out.entries[2].embedding is not None
    # the lighter entry renders brighter
    assert out.entries[0].embedding[0] > out.entries[2].embedding[0]
