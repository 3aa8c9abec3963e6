"""A local set of real portraits for calibrating the shape prior without 3D truth (issue 27, item 4).

    python experiments/real_portraits.py build --mirror GITDIR --out DIR [--count 600]
    python experiments/real_portraits.py features --set DIR            # front end -> DIR/features.npz

**Portraits** (``build``).  ``voteview/member_photos`` (``GITDIR`` = the bare git directory of a
snapshot brought in with the search tool's ``fetch``) keeps one portrait per member of the US
Congress.  The build walks the members born in 1900 or later in a fixed order (sha1 of the
Bioguide id, so the choice does not follow names, states or parties), takes the member's portrait at
HEAD (``images/wiki``, ``images/manual`` or ``images/bio_guide``), keeps it when it is at least
``MIN_WIDTH`` pixels wide and the shipped front end finds a face, and stops at ``--count`` portraits.
One portrait per person: a person is never in both halves.  ``manifest.json`` records each photo's
repository path and commit, the licence as far as it is known (Bioguide portraits are US-government
works; voteview did not record the licence of the Wikipedia and manually collected photos, so those
are marked unverified, :data:`real_retrieval.LICENCE`), and the person-disjoint half
(:func:`half`).  Nothing of the set is committed: it is built and used locally.

**Features** (``features``).  The front end (detection, 68 landmarks, 128-d identity embedding) on
every photo of a manifest folder, written to ``features.npz`` beside it: ``files``, ``persons``,
``halves`` (``"tune"`` / ``"test"``), ``landmarks (N, 68, 2) float32``, ``embeddings (N, 128) float32``,
``image_size (N, 2) int64`` (h, w), and ``frontend`` (the front-end configuration, JSON).  Photos
without a face are left out and counted.  Any photo-set folder works (e.g. the retrieval set of
``experiments/real_retrieval.py``), so the halves of every real set come from the same rule.

The script writes no results file in the repository (writes no results): its outputs are the local
set's ``manifest.json``, ``build.json`` and ``features.npz``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MIN_WIDTH = 300
MIN_BORN = 1900


def half(person: str) -> str:
    """The person-disjoint half of a person label: ``"tune"`` or ``"test"``.

    The label's Bioguide id (the text in the last parentheses, else the whole label) decides, through
    the first byte of its sha1: even -> tune, odd -> test.  The same rule serves every real set, so a
    person is in the same half everywhere.
    """
    key = person.rsplit("(", 1)[-1].rstrip(")").strip() if "(" in person else person
    return "tune" if hashlib.sha1(key.encode()).digest()[0] % 2 == 0 else "test"


def build(mirror, out_dir, count: int = 600, progress: bool = True) -> dict:
    from real_retrieval import LICENCE, _git

    from digitaltwin_jax.frontend import FrontendError, detect_faces
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.io.images import read_image

    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    head = _git(mirror, "rev-parse", "HEAD").strip()
    members = json.loads(_git(mirror, "show", "HEAD:config/database-raw.json"))
    files = set(_git(mirror, "ls-tree", "-r", "--name-only", "HEAD", "images").split())
    person = {}
    for m in members:
        if m.get("bioguide_id") and m.get("born") and int(m["born"]) >= MIN_BORN:
            person.setdefault(m["bioguide_id"], (m["bioname"], f"{int(m['icpsr']):06d}"))
    order = sorted(person, key=lambda b: hashlib.sha1(b.encode()).hexdigest())
    summary = {"mirror_head": head, "members": len(order), "tried": 0, "too_small": 0, "no_face": 0, "kept": 0}
    manifest = []
    t0 = time.time()
    for bioguide in order:
        if len(manifest) >= count:
            break
        name, icpsr = person[bioguide]
        path = next((f"images/{d}/{icpsr}.jpg" for d in ("wiki", "manual", "bio_guide")
                     if f"images/{d}/{icpsr}.jpg" in files), None)
        if path is None:
            continue
        summary["tried"] += 1
        data = _git(mirror, "show", f"{head}:{path}", binary=True)
        fname = f"{bioguide}.jpg"
        (out_dir / fname).write_bytes(data)
        try:
            img = read_image(out_dir / fname)
        except (OSError, ValueError):
            img = None
        if img is None or img.shape[1] < MIN_WIDTH:
            summary["too_small"] += 1
            (out_dir / fname).unlink()
            continue
        try:
            faces = detect_faces(img)
        except FrontendError:
            faces = []
        if not faces:
            summary["no_face"] += 1
            (out_dir / fname).unlink()
            continue
        label = f"{name} ({bioguide})"
        manifest.append({"file": fname, "person": label, "source": f"voteview/member_photos:{path}@{head}",
                         "licence": LICENCE[path.split("/")[1]], "credit": "voteview.com (UCLA), member_photos repository",
                         "notes": f"{img.shape[1]}x{img.shape[0]} px; half={half(label)}; local measurement only"})
        if progress and len(manifest) % 25 == 0:
            print(f"{len(manifest)}/{count} portraits ({time.time() - t0:.0f} s)", flush=True)
    summary["kept"] = len(manifest)
    summary["halves"] = {h: sum(half(e["person"]) == h for e in manifest) for h in ("tune", "test")}
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1))
    atomic_write_text(out_dir / "build.json", json.dumps(summary, indent=1))
    return summary


def features(set_dir, progress: bool = True) -> dict:
    """Run the front end on every photo of the manifest folder ``set_dir``; write ``features.npz``."""
    import io

    from digitaltwin_jax.frontend import FrontendError, detect_faces, identity_embedding
    from digitaltwin_jax.io.atomic import atomic_write_bytes
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.regressor.data import _default_frontend_config

    set_dir = Path(set_dir).expanduser()
    entries = json.loads((set_dir / "manifest.json").read_text())
    rows = {k: [] for k in ("files", "persons", "halves", "landmarks", "embeddings", "image_size")}
    missed = []
    t0 = time.time()
    for i, e in enumerate(entries):
        img = read_image(set_dir / e["file"])
        try:
            face = detect_faces(img)[0]
            emb = np.asarray(identity_embedding(img, face), np.float32)
        except (FrontendError, IndexError, ValueError, RuntimeError) as exc:
            missed.append(f"{e['file']}: {type(exc).__name__}")
            continue
        for k, v in (("files", e["file"]), ("persons", e["person"]), ("halves", half(e["person"])),
                     ("landmarks", np.asarray(face.landmarks, np.float32)), ("embeddings", emb),
                     ("image_size", np.asarray(img.shape[:2], np.int64))):
            rows[k].append(v)
        if progress and (i + 1) % 50 == 0:
            print(f"front end {i + 1}/{len(entries)} ({time.time() - t0:.0f} s)", flush=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in rows.items()},
             frontend=np.asarray(json.dumps(_default_frontend_config(), sort_keys=True)))
    atomic_write_bytes(set_dir / "features.npz", buf.getvalue())
    return {"photos": len(entries), "with_face": len(rows["files"]), "missed": missed,
            "seconds": round(time.time() - t0, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--mirror", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--count", type=int, default=600)
    f = sub.add_parser("features")
    f.add_argument("--set", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "build":
        print(json.dumps(build(a.mirror, a.out, a.count), indent=1))
    else:
        print(json.dumps(features(a.set), indent=1))


if __name__ == "__main__":
    main()
