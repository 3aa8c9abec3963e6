"""How photo-like are our renders to the face encoder?  (issue "regressor on real photos", item 1)

    python experiments/regressor_realism.py --real DIR --set NAME=FOLDER[:N] ... [--out FILE]

For every render set (a synthetic data-set folder whose front-end cache is complete; ``:N`` keeps
its first N images) and a folder of real photos (``*.jpg`` / ``*.png``; their front-end results
are cached in ``DIR/frontend_cache.npz``; the shipped example photo and matplotlib's Grace Hopper
are added):

* detection rate on the renders and landmark NME (dlib's 68 points vs the projected ground truth,
  mean point error / outer-eye-corner distance);
* real -> nearest render: mean distance (with a t interval) from each real photo's identity
  embedding to its nearest render (dlib's same-person threshold is 0.6);
* render -> nearest other render (leave-one-out) and the spread (mean distance to the centroid) of
  renders and of real photos;
* Fréchet distance between Gaussians fitted to the render and the real embeddings.

Nearest distances shrink as a set grows, so sets are compared at a matched N.  The photos are used
for measurement only and are not part of the repository.

Results file: ``experiments/results/regressor_realism.json`` (docs: Experiments, "Realism to the
encoder").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def real_embeddings(folder) -> tuple[np.ndarray, list[str]]:
    """``(N, 128)`` embeddings (NaN rows: no face) of the photos in ``folder`` plus the two shipped
    public-domain photos; cached in ``folder/frontend_cache.npz``."""
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from bench_fidelity import _frontend, real_photos

    from digitaltwin_jax.io.atomic import atomic_write
    from digitaltwin_jax.io.images import read_image

    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    names = [p.name for p in paths]
    cache = folder / "frontend_cache.npz"
    if cache.exists():
        with np.load(cache) as z:
            if list(z["names"]) == names:
                emb = z["embeddings"]
            else:
                emb = None
    else:
        emb = None
    if emb is None:
        imgs = []
        for p in paths:
            im = read_image(p)
            imgs.append(im)
        emb, _, _ = _frontend(imgs)
        with atomic_write(cache) as fh:
            np.savez(fh, names=np.array(names), embeddings=emb)
    shipped = real_photos()
    e2, _, _ = _frontend([im for _, im in shipped])
    return np.concatenate([emb, e2]), names + [nm for nm, _ in shipped]


def render_set(folder, n=None):
    from digitaltwin_jax.regressor.data import _read_shards, load_frontend_cache

    arr = _read_shards(Path(folder), ("index", "landmarks_2d"), n)
    cache = load_frontend_cache(folder)
    pos = {int(i): r for r, i in enumerate(cache["index"])}
    rows = np.array([pos[int(i)] for i in arr["index"]])
    return cache["embeddings"][rows].astype(np.float64), cache["landmarks"][rows].astype(np.float64), arr["landmarks_2d"].astype(np.float64)


def landmark_nme(det, gt) -> np.ndarray:
    """``(N,)`` mean point error / outer-eye-corner distance (points 36 and 45); NaN without a face."""
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    return np.mean(np.linalg.norm(det - gt, axis=2), axis=1) / iod


def realism_row(renders, real) -> dict:
    from scipy.spatial import cKDTree

    from digitaltwin_jax.evaluation.fidelity import frechet_distance, mean_interval, nearest_distances

    r = renders[np.all(np.isfinite(renders), axis=1)]
    q = real[np.all(np.isfinite(real), axis=1)]
    loo = cKDTree(r).query(r, k=2)[0][:, 1]
    return {
        "n_renders_with_face": int(r.shape[0]), "n_real_with_face": int(q.shape[0]),
        "real_to_nearest_render": mean_interval(nearest_distances(q, r)).as_dict(),
        "render_to_nearest_other_render": float(np.mean(loo)),
        "render_spread": float(np.mean(np.linalg.norm(r - r.mean(0), axis=1))),
        "real_spread": float(np.mean(np.linalg.norm(q - q.mean(0), axis=1))),
        "frechet_render_real": float(frechet_distance(r, q)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--set", action="append", required=True, help="NAME=FOLDER[:N]")
    ap.add_argument("--out", default=str(HERE / "results" / "regressor_realism.json"))
    a = ap.parse_args(argv)
    real, names = real_embeddings(a.real)
    result = {"real_photos": {"folder_files": len(names) - 2, "with_face": int(np.isfinite(real[:, 0]).sum()),
                              "names_shipped": names[-2:]}, "sets": {}}
    for spec in a.set:
        name, rest = spec.split("=", 1)
        folder, _, n = rest.partition(":")
        emb, det, gt = render_set(folder, int(n) if n else None)
        ok = np.isfinite(emb[:, 0])
        row = {"folder": folder, "n_images": int(emb.shape[0]), "detection_rate": float(ok.mean())}
        nme = landmark_nme(det[ok], gt[ok])
        row["landmark_nme_median"] = float(np.median(nme))
        row["landmark_nme_mean"] = float(np.mean(nme))
        row.update(realism_row(emb, real))
        result["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
