"""synth.photo_skin: a photo-derived skin bank with its provenance, rendered by the synth engine."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax.synth import photo_skin as P

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="no photos"):
        P.build_photo_skin_bank(tmp_path, licence="public domain")
    with pytest.raises(ValueError, match="not a folder"):
        P.build_photo_skin_bank(tmp_path / "nope", licence="public domain")
    with pytest.raises(ValueError, match="not found"):
        P.build_photo_skin_bank([tmp_path / "missing.jpg"], licence="public domain")
    (tmp_path / "a.png").write_bytes(ASTRONAUT.read_bytes())
    with pytest.raises(ValueError, match="licence"):
        P.build_photo_skin_bank(tmp_path, licence="  ")
    with pytest.raises(ValueError, match="size"):
        P.PhotoSkinConfig(size=4)
    assert P.provenance_path(tmp_path / "bank.npz") == tmp_path / "bank.provenance.json"


def test_bank_from_a_folder_renders_in_the_synth_engine(tmp_path, low_model):
    import imageio.v3 as iio

    from digitaltwin_jax.synth.albedo import texture_bank_albedo, uv_geometry
    from digitaltwin_jax.texture.bank import load_bank

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(ASTRONAUT, photos / "astronaut.png")
    iio.imwrite(photos / "grey.png", np.full((120, 100, 3), 128, np.uint8))  # no face: skipped, listed
    out = tmp_path / "bank" / "skin.npz"
    assert P.main([str(photos), "--out", str(out), "--licence", "public domain (NASA)", "--size", "64"]) == 0
    prov = json.loads(P.provenance_path(out).read_text())
    rows = {r["name"]: r for r in prov["photos"]}
    assert prov["entries"] == 1 and prov["skipped"] == 1 and prov["licence"] == "public domain (NASA)"
    assert "skipped" in rows["grey.png"] and rows["astronaut.png"]["entry"] == 0
    for name in ("astronaut.png", "grey.png"):  # reference: hashlib on the file itself
        assert rows[name]["sha256"] == hashlib.sha256((photos / name).read_bytes()).hexdigest()
    assert rows["astronaut.png"]["landmark_rmse_px"] < 10.0
    bank = load_bank(out)
    e = bank.entries[0]
    assert e.name == "photo-astronaut" and e.texture.shape == (64, 64, 3) and e.texture.dtype == np.uint8
    assert e.embedding.shape == (128,) and np.isfinite(e.embedding).all()
    # the photo is not grey: its face texels carry the photo's skin colour (red above blue)
    assert e.base_color[0] > e.base_color[2]
    # the synth engine's albedo bank holds the entry's map unchanged at the same size
    m = low_model
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 64)
    ab = texture_bank_albedo(bank, m, geom)
    assert ab.ids == ("photo-astronaut",)
    assert np.abs(ab.maps[0].astype(int) - e.texture.astype(int)).max() <= 1
