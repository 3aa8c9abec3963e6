"""Real-face photo sets: manifest loading and checking (digitaltwin_jax/evaluation/photo_sets.py)."""
import json

import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.evaluation import photo_sets
from digitaltwin_jax.evaluation.photo_sets import (
    PhotoSet,
    default_photo_set,
    default_photo_set_dir,
    load_photo_set,
)

PEOPLE = ["ann", "bob", "ann", "cy", "bob", "ann"]


def _entry(file, person, **extra):
    e = {"file": file, "person": person, "source": f"generated:{file}", "licence": "CC0-1.0",
         "author": "test", "notes": "8x8 generated"}
    e.update(extra)
    return e


def _make_set(folder, people=PEOPLE, subdir=""):
    entries = []
    for i, person in enumerate(people):
        name = f"{subdir}{person}_{i}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (30 * i, 100, 200)).save(folder / name, quality=90)
        entries.append(_entry(name, person))
    _write(folder, entries)
    return entries


def _write(folder, manifest):
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_load_ids_and_fields(tmp_path):
    _make_set(tmp_path, subdir="img/")
    ps = load_photo_set(tmp_path)
    assert isinstance(ps, PhotoSet) and len(ps) == 6
    assert ps.persons == ("ann", "bob", "cy")
    assert ps.person_ids.dtype == np.int64 and ps.person_ids.shape == (6,)
    np.testing.assert_array_equal(ps.person_ids, [0, 1, 0, 2, 1, 0])
    assert [p.name for p in ps.paths] == [f"{p}_{i}.jpg" for i, p in enumerate(PEOPLE)]
    assert all(p.is_absolute() and p.is_file() for p in ps.paths)
    assert ps.licences == ("CC0-1.0",) * 6 and ps.sources[0] == "generated:img/ann_0.jpg"
    assert ps.credits[0] == "test" and ps.folder == tmp_path.resolve()
    np.testing.assert_array_equal(ps.photos_per_person(), [3, 2, 1])
    np.testing.assert_array_equal(ps.indices_of("bob"), [1, 4])
    np.testing.assert_array_equal(ps.indices_of(2), [3])
    with pytest.raises(ValueError):
        ps.person_ids[0] = 5  # read-only


def test_load_accepts_str_path_and_no_optional_fields(tmp_path):
    entries = _make_set(tmp_path)
    for e in entries:
        del e["author"], e["notes"]
    _write(tmp_path, entries)
    ps = load_photo_set(str(tmp_path))
    assert ps.credits == ("",) * 6


def _broken(tmp_path, mutate):
    entries = _make_set(tmp_path)
    result = mutate(entries)
    _write(tmp_path, entries if result is None else result)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda es: {"photos": es}, "top level must be a list"),
        (lambda es: [], "lists no photos"),
        (lambda es: es + ["x.jpg"], "entry 6 is malformed"),
        (lambda es: es[1].pop("licence") and None, "entry 1 is missing the required field 'licence'"),
        (lambda es: es[2].update(licence="  "), "entry 2: field 'licence' must be a non-empty string"),
        (lambda es: es[0].update(person=3), "entry 0: field 'person' must be a non-empty string"),
        (lambda es: es[0].pop("source") and None, "missing the required field 'source'"),
        (lambda es: es[0].update(author=["x"]), "field 'author' must be a string"),
        (lambda es: es[3].update(file="nobody.jpg"), "entry 3: listed file 'nobody.jpg' is missing"),
        (lambda es: es[4].update(file="../x.jpg"), "must be a relative path inside the folder"),
        (lambda es: es[4].update(file=es[0]["file"]), "is listed twice (also entry 0)"),
        (lambda es: [es[0], es[1], es[2], es[3]], "at least 2 persons with at least 2 photos each; has 1"),
    ],
)
def test_malformed_manifest_raises(tmp_path, mutate, message):
    _broken(tmp_path, mutate)
    with pytest.raises(ValueError) as info:
        load_photo_set(tmp_path)
    assert message in str(info.value)
    assert str(tmp_path.resolve()) in str(info.value)


def test_missing_folder_manifest_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="is not an existing folder"):
        load_photo_set(tmp_path / "nope")
    with pytest.raises(ValueError, match="no manifest.json in the folder"):
        load_photo_set(tmp_path)
    (tmp_path / "manifest.json").write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="manifest.json is malformed: not valid UTF-8 JSON"):
        load_photo_set(tmp_path)


def test_default_photo_set_env_override_and_absent(tmp_path, monkeypatch):
    _make_set(tmp_path)
    monkeypatch.setenv("DIGITALTWIN_REAL_FACES", str(tmp_path))
    assert len(default_photo_set()) == 6
    monkeypatch.setenv("DIGITALTWIN_REAL_FACES", "")
    monkeypatch.setattr(photo_sets, "default_photo_set_dir", lambda: tmp_path / "absent")
    assert default_photo_set() is None


def test_shipped_photo_set_is_consistent():
    folder = default_photo_set_dir()
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"no shipped real-face set at {folder}")
    ps = load_photo_set(folder)  # every file exists, required fields present
    assert all(lic.strip() for lic in ps.licences)
    assert all(src.strip() for src in ps.sources)
    assert all(c.strip() for c in ps.credits), "every shipped photo records its author or credit"
    assert int(np.sum(ps.photos_per_person() >= 2)) >= 10
    total = 0
    for p in ps.paths:
        with Image.open(p) as im:
            assert max(im.size) <= 640, p
            im.verify()
        total += p.stat().st_size
    assert total < 4_000_000
    listed = {p.name for p in ps.paths}
    on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}}
    assert on_disk == listed, "every photo in the folder is listed in the manifest"
