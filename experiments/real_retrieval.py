"""Same-person retrieval on real photos (fidelity set (c)(i); issues 14 and 16): do the reconstructed
head shapes carry identity?

    python experiments/real_retrieval.py build --mirror GITDIR --out DIR     # photo set from voteview's history
    python experiments/real_retrieval.py run --set DIR [--out FILE]          # retrieval with every shape source

**Photo set** (``build``).  ``voteview/member_photos`` (a git snapshot, ``GITDIR`` = its bare git
directory) keeps one portrait per member of the US Congress, but its *history* holds a second one
for some members: the Congressional Bioguide photo it later replaced by the member's Wikipedia photo
(2021), and, for members with two ICPSR ids (a party switch, a later presidency), one photo per id.
The build takes every member born in 1900 or later with two or more distinct image files over the
history (the last version of each path), keeps those with a detected face, and drops a photo that is
the *same photograph* as another of the member (recropped, rescaled or mirrored: normalised
correlation of the landmark-aligned 64 x 64 grey face, or of its mirror image, above
``SAME_PHOTO_NCC``); members left with two or more photos form the set.  ``manifest.json`` records
each photo's repository path and commit and its licence as far as it is known: Bioguide portraits
are US-government works (public domain); voteview did not record the licence of the Wikipedia and
manually collected photos, so those are marked unverified.  The set is therefore **not** a
licence-clean set to ship; it is built and used locally (``~/.cache``), and nothing of it is committed.

**Retrieval** (``run``).  Every photo goes through the fidelity benchmark's front end and shape
sources (:func:`digitaltwin_jax.regressor.evaluate.predict_with_fits`): template, raw regressor,
guarded regressor (the default's shape), each followed by the non-rigid fit, and the 68-landmark
identity fit.  Distances between heads: RMS vertex distance within 95 mm of the nose tip after a
similarity alignment (:func:`~digitaltwin_jax.evaluation.fidelity.shape_distance_matrix`).  Rank-1
retrieval: is a photo's nearest head (over all other photos) one of the same person?  Chance = the
fraction of same-person photos among the others.  Reported: rank-1 with its Wilson interval, chance,
and the paired difference rank-1 - chance with a 95% bootstrap interval over persons (2,000
resamples of the persons, queries of a person kept together).  The identity embeddings themselves
(dlib 128-d) are scored the same way: they show what the photos allow.

**Multi-photo.**  Leave one photo out: for each query photo, every person's gallery head is
reconstructed from all of that person's photos except the query (the query's own person from the
rest), by the multi-photo path: :func:`digitaltwin_jax.multiview.combined_shape` at the mean
embedding, raw (``regressor_mean_embedding``) or guarded (``guarded_mean_embedding``), and the default
multi-photo avatar's head (``multiview_fit``: the guarded start, then
:func:`digitaltwin_jax.multiview.fit_views` with its defaults, the shared corrective field included).
The query's single-photo head (``regressor``, ``guarded``, ``guarded+fit`` respectively) is matched
against the gallery (rank-1 over persons; chance 1 / persons).  For the same query the single-photo gallery (one head per person from one
of its other photos, the first) is scored alongside, so the two are paired.

Results files: ``experiments/results/real_retrieval_voteview.json`` (``run``; the single- and
multi-photo retrieval tables of the docs pages Fidelity and Several photos),
``experiments/results/real_retrieval_voteview_build.json`` and ``real_retrieval_voteview_manifest.json``
(``build``: the set and every photo's source).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SAME_PHOTO_NCC = 0.9
MIN_BORN = 1900
LICENCE = {
    "bio_guide": "Public domain (US Congress Biographical Directory portrait, work of the US government)",
    "wiki": ("Unverified: taken by voteview from the member's Wikipedia article; official House/Senate "
             "portraits are US-government works, but the file's licence was not recorded"),
    "manual": "Unverified: collected manually by voteview (source in its config/provenance.json)",
}
METHODS = ("mean", "regressor", "guarded", "regressor+fit", "guarded+fit", "landmark_fit")


def _git(gitdir, *args, binary=False):
    out = subprocess.run(["git", "--git-dir", str(gitdir), *args], check=True, capture_output=True)
    return out.stdout if binary else out.stdout.decode()


def _aligned_face(image, landmarks, size=64):
    """``(size, size)`` float grey face, similarity-aligned by the 68 landmarks (eye corners and
    mouth corners on fixed positions), zero mean and unit norm."""
    import cv2

    lm = np.asarray(landmarks, np.float64)
    src = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[48], lm[54]])
    dst = np.array([[0.3, 0.35], [0.7, 0.35], [0.35, 0.75], [0.65, 0.75]]) * size
    m, _ = cv2.estimateAffinePartial2D(src, dst)
    grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
    face = cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_AREA)
    face = face - face.mean()
    return face / max(np.linalg.norm(face), 1e-9)


def build(mirror, out_dir, progress=True) -> dict:
    """Write the photo set (images and ``manifest.json``) into ``out_dir``; returns a summary."""
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.regressor.data import _default_frontend

    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    head = _git(mirror, "rev-parse", "HEAD").strip()
    members = json.loads(_git(mirror, "show", "HEAD:config/database-raw.json"))
    person = {}
    for m in members:
        if m.get("bioguide_id") and m.get("born") and int(m["born"]) >= MIN_BORN:
            person[f"{int(m['icpsr']):06d}"] = (m["bioguide_id"], m["bioname"])
    added = _git(mirror, "log", "--format=", "--name-only", "--diff-filter=A", "--", "images/bio_guide",
                 "images/wiki", "images/manual").split()
    by_person = {}
    for path in sorted(set(added)):
        icpsr = Path(path).stem
        if icpsr in person:
            by_person.setdefault(person[icpsr], []).append(path)
    summary = {"mirror_head": head, "candidates": 0, "photos_read": 0, "no_face": 0, "same_photo_dropped": 0,
               "persons": 0, "photos": 0, "dropped": []}
    manifest = []
    for (bioguide, name), paths in sorted(by_person.items()):
        if len(paths) < 2:
            continue
        summary["candidates"] += 1
        photos, seen = [], set()
        for path in paths:
            exists = bool(_git(mirror, "ls-tree", "HEAD", path).strip())
            commit = head if exists else _git(mirror, "log", "-1", "--format=%H", "--diff-filter=D", "--", path).strip() + "^"
            commit = _git(mirror, "rev-parse", commit).strip()
            data = _git(mirror, "show", f"{commit}:{path}", binary=True)
            digest = hashlib.sha1(data).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            fname = f"{bioguide}_{len(photos)}.jpg"
            tmp = out_dir / fname
            tmp.write_bytes(data)
            img = read_image(tmp)
            summary["photos_read"] += 1
            fe = _default_frontend(img)
            if fe is None:
                summary["no_face"] += 1
                tmp.unlink()
                summary["dropped"].append(f"{bioguide} {path}: no face")
                continue
            mirrored = img[:, ::-1].copy()
            fe_m = _default_frontend(mirrored)
            photos.append({"file": fname, "path": path, "commit": commit, "img": img, "lm": fe[1],
                           "face": _aligned_face(img, fe[1]),
                           "face_m": None if fe_m is None else _aligned_face(mirrored, fe_m[1])})
        keep = []
        for p in sorted(photos, key=lambda p: -p["img"].shape[0] * p["img"].shape[1]):  # larger first
            ncc = [max(float(np.sum(p["face"] * q["face"])),
                       float(np.sum(p["face_m"] * q["face"])) if p["face_m"] is not None else -1.0) for q in keep]
            if ncc and max(ncc) > SAME_PHOTO_NCC:
                summary["same_photo_dropped"] += 1
                summary["dropped"].append(f"{bioguide} {p['path']}: same photograph as a kept one (NCC {max(ncc):.3f})")
                (out_dir / p["file"]).unlink()
                continue
            p["ncc_to_kept"] = [round(x, 3) for x in ncc]
            keep.append(p)
        if len(keep) < 2:
            for p in keep:
                (out_dir / p["file"]).unlink()
            continue
        summary["persons"] += 1
        for p in keep:
            folder = p["path"].split("/")[1]
            manifest.append({"file": p["file"], "person": f"{name} ({bioguide})",
                             "source": f"voteview/member_photos:{p['path']}@{p['commit']}",
                             "licence": LICENCE[folder], "credit": "voteview.com (UCLA), member_photos repository",
                             "notes": (f"{p['img'].shape[1]}x{p['img'].shape[0]} px; face-crop correlation to the "
                                       f"member's other kept photos {p['ncc_to_kept']}; local measurement only")})
        if progress:
            print(f"{bioguide} {name}: {len(keep)} photos", flush=True)
    summary["photos"] = len(manifest)
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1))
    return summary


def _bootstrap_diff(hits, chance, groups, reps=2000, seed=0):
    """Mean of ``hits - chance`` and its 95% percentile interval, resampling the groups (persons)."""
    hits, chance, groups = np.asarray(hits, float), np.asarray(chance, float), np.asarray(groups)
    ug = np.unique(groups)
    per = np.array([np.sum(hits[groups == g] - chance[groups == g]) for g in ug])
    cnt = np.array([np.sum(groups == g) for g in ug])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ug.size, size=(reps, ug.size))
    boots = per[idx].sum(1) / cnt[idx].sum(1)
    return {"mean": float(per.sum() / cnt.sum()), "lo": float(np.percentile(boots, 2.5)),
            "hi": float(np.percentile(boots, 97.5)), "persons": int(ug.size), "queries": int(cnt.sum())}


def _rank1(dist, person, candidates):
    """Per query: (hit, chance) of the nearest candidate (ties shared) among ``candidates[q]``."""
    hits, chances = [], []
    for q, cand in enumerate(candidates):
        row = dist[q, cand]
        best = row.min()
        near = np.abs(row - best) <= 1e-9 * max(1.0, abs(best))
        same = person[cand] == person[q]
        hits.append(float(np.sum(near & same)) / float(near.sum()))
        chances.append(float(same.mean()))
    return np.array(hits), np.array(chances)


def _score(dist, person, candidates):
    from digitaltwin_jax.evaluation.fidelity import _wilson

    hits, chance = _rank1(dist, person, candidates)
    lo, hi = _wilson(hits.sum(), hits.size)
    return {"rank1": float(hits.mean()), "rank1_lo": lo, "rank1_hi": hi, "chance": float(chance.mean()),
            "queries": int(hits.size), "rank1_minus_chance": _bootstrap_diff(hits, chance, person)}, hits


def _distances_to(head, gallery, mask):
    """``(G,)`` the distances of :func:`~digitaltwin_jax.evaluation.fidelity.shape_distance_matrix`
    from one head ``(V, 3)`` to each gallery head ``(G, V, 3)`` (similarity-aligned both ways, averaged)."""
    from digitaltwin_jax.evaluation.align import umeyama

    a = np.asarray(head, np.float64)[mask]
    out = []
    for g in np.asarray(gallery, np.float64)[:, mask]:
        d1 = np.sqrt(((umeyama(a, g).apply(a) - g) ** 2).sum(1).mean())
        d2 = np.sqrt(((umeyama(g, a).apply(g) - a) ** 2).sum(1).mean())
        out.append(0.5 * (d1 + d2))
    return np.array(out)


def run(set_dir, progress=True) -> dict:
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import shape_distance_matrix
    from digitaltwin_jax.evaluation.photo_sets import load_photo_set
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.multiview import combined_shape, fit_views
    from digitaltwin_jax.regressor.evaluate import EvalData, predict_with_fits
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.weights import load_regressor

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_fidelity import _frontend

    t0 = time.perf_counter()
    ps = load_photo_set(set_dir)
    images = [read_image(p) for p in ps.paths]
    emb, lms, all_sizes = _frontend(images)  # the fidelity benchmark's front end, NaN rows without a face
    ok = np.isfinite(emb[:, 0])
    idx = np.flatnonzero(ok)
    person = np.asarray(ps.person_ids)[idx]
    multi = np.array([np.sum(person == p) >= 2 for p in person])
    idx, person = idx[multi], person[multi]  # persons with >= 2 photos with a face
    sizes = all_sizes[idx]
    model = load_head_model("low")
    reg, guard = load_regressor(), load_guard()
    data = EvalData(np.full((idx.size, model.num_vertices, 3), np.nan, np.float32), emb[idx], lms[idx], sizes,
                    np.array([str(ps.paths[i]) for i in idx]))
    heads, _ = predict_with_fits(model, data, reg, METHODS, guard=guard, progress=progress)
    face = np.linalg.norm(model.vertices - model.vertices[int(model.nose_tip_index)], axis=1) <= 95.0
    everyone = [np.array([j for j in range(idx.size) if j != q]) for q in range(idx.size)]
    res = {"set": str(set_dir), "photos": int(n), "photos_with_face": int(ok.sum()), "persons": int(np.unique(person).size),
           "queries": int(idx.size), "guard_factor": [float(x) for x in guard.factor(emb[idx])], "single": {}, "multi": {}}
    e = emb[idx].astype(np.float64)
    res["single"]["identity_embedding"], _ = _score(np.linalg.norm(e[:, None] - e[None], axis=-1), person, everyone)
    dists = {}
    for m in METHODS:
        dists[m] = shape_distance_matrix(heads[m], face)
        res["single"][m], _ = _score(dists[m], person, everyone)
        if progress:
            r = res["single"][m]
            print(f"single {m:14s} rank-1 {r['rank1']:.3f} [{r['rank1_lo']:.3f}, {r['rank1_hi']:.3f}] chance {r['chance']:.3f}",
                  flush=True)

    # multi-photo: leave the query out of its person's gallery head
    persons = np.unique(person)
    views = {p: np.flatnonzero(person == p) for p in persons}

    def gallery_head(members, guarded):
        start = combined_shape(model, emb[idx[members]], reg, guard if guarded else None)
        if not guarded:  # the multi-photo fit only from the default (guarded) start
            return start.astype(np.float32), start.astype(np.float32)
        r = fit_views(model, lms[idx[members]].astype(np.float64), sizes[members], shape=start,
                      camera_groups=None)
        return start.astype(np.float32), r.neutral.astype(np.float32)

    kinds = ("regressor_mean_embedding", "guarded_mean_embedding", "multiview_fit")
    full = {}
    for p in persons:
        (reg_s, _), (g_s, g_fit) = gallery_head(views[p], False), gallery_head(views[p], True)
        full[p] = dict(zip(kinds, (reg_s, g_s, g_fit)))
    single_src = {"regressor_mean_embedding": "regressor", "guarded_mean_embedding": "guarded", "multiview_fit": "guarded+fit"}
    hits = {k: [] for k in kinds}
    hits_1 = {k: [] for k in kinds}
    chance = []
    for q in range(idx.size):
        p = person[q]
        rest = views[p][views[p] != q]
        (reg_s, _), (g_s, g_fit) = gallery_head(rest, False), gallery_head(rest, True)
        own = dict(zip(kinds, (reg_s, g_s, g_fit)))
        for k in kinds:
            gal = np.stack([own[k] if pp == p else full[pp][k] for pp in persons])
            gal1 = np.stack([heads[single_src[k]][rest[0] if pp == p else views[pp][0]] for pp in persons])
            for g, store in ((gal, hits[k]), (gal1, hits_1[k])):
                dm = _distances_to(heads[single_src[k]][q], g, face)
                best = dm.min()
                near = np.abs(dm - best) <= 1e-9 * max(1.0, best)
                store.append(float(near[persons == p].sum()) / float(near.sum()))
        chance.append(1.0 / persons.size)
    for k in kinds:
        h, h1 = np.array(hits[k]), np.array(hits_1[k])
        res["multi"][k] = {"query_head": single_src[k], "rank1": float(h.mean()), "rank1_single_gallery": float(h1.mean()),
                           "chance": float(np.mean(chance)), "queries": int(h.size),
                           "rank1_minus_chance": _bootstrap_diff(h, chance, person),
                           "multi_minus_single_gallery": _bootstrap_diff(h, h1, person)}
        if progress:
            print(f"multi {k:24s} rank-1 {h.mean():.3f} (single-photo gallery {h1.mean():.3f}) chance {np.mean(chance):.3f}",
                  flush=True)
    res["seconds"] = time.perf_counter() - t0
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--mirror", required=True, help="bare git directory of voteview/member_photos")
    b.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--set", required=True)
    r.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "real_retrieval.json"))
    a = ap.parse_args(argv)
    from digitaltwin_jax.io.atomic import atomic_write_text

    if a.cmd == "build":
        s = build(a.mirror, a.out)
        print(json.dumps({k: v for k, v in s.items() if k != "dropped"}, indent=1))
        atomic_write_text(Path(a.out).expanduser() / "build_summary.json", json.dumps(s, indent=1))
        return 0
    res = run(a.set)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
