"""experiments/real_portraits.py: the person-disjoint halves, and the local calibration set when present.

The set itself is never committed (``experiments/real_portraits.py build`` makes it from a fetched
public repository); its checks run where it exists and skip, saying how to build it, elsewhere."""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import load  # noqa: E402

rp = load("real_portraits")
SET = Path(os.environ.get("DIGITALTWIN_REAL_PORTRAITS", "~/.cache/digitaltwin_jax/real/portraits")).expanduser()


def test_half_is_a_function_of_the_person_id_only():
    # the rule by hand: first byte of sha1 of the Bioguide id, even -> tune
    for pid in ("A000055", "S001185", "R000614", "Z999999"):
        want = "tune" if hashlib.sha1(pid.encode()).digest()[0] % 2 == 0 else "test"
        assert rp.half(f"SOMEONE, Name ({pid})") == want == rp.half(pid)
    halves = [rp.half(f"P{i:06d}") for i in range(2000)]
    assert 0.45 < halves.count("tune") / 2000 < 0.55


def _need_set():
    if not (SET / "manifest.json").is_file() or not (SET / "features.npz").is_file():
        pytest.skip(f"local real portrait set absent at {SET}: build it with `python experiments/real_portraits.py "
                    "build --mirror <voteview/member_photos git dir> --out DIR` and `... features --set DIR` "
                    "(or set DIGITALTWIN_REAL_PORTRAITS)")


def test_local_set_manifest_sources_licences_and_halves():
    _need_set()
    entries = json.loads((SET / "manifest.json").read_text())
    assert len(entries) >= 300
    persons = [e["person"] for e in entries]
    assert len(set(persons)) == len(persons)  # one portrait per person
    for e in entries:
        assert e["source"].startswith("voteview/member_photos:images/") and "@" in e["source"]
        assert e["licence"] and (SET / e["file"]).is_file()
    z = np.load(SET / "features.npz")
    halves = dict(zip(np.asarray(z["persons"]).astype(str), np.asarray(z["halves"]).astype(str)))
    assert all(rp.half(p) == h for p, h in halves.items())
    tune = {p for p, h in halves.items() if h == "tune"}
    test = {p for p, h in halves.items() if h == "test"}
    assert not tune & test and len(tune) >= 150 and len(test) >= 150
    assert z["landmarks"].shape[1:] == (68, 2) and z["embeddings"].shape[1] == 128
