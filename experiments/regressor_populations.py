"""Stand-in training populations for the Fig. 6 ablation (paper section 3.2 / supplementary 4.4),
rendered with the synthetic engine into shards in the ``digitaltwin_jax.synth.dataset`` layout.

We have no 482-subject scan database.  The stand-in "database" is ``--subjects`` heads drawn from
the ICT identity prior (N(0, 1) coefficients, fixed seed), split into ``--groups`` groups by k-means
on their coefficients (our stand-in for the paper's gender x ethnicity groups).  From it:

* ``noaug``: a random database subject, re-rendered (paper: "repetitively sample 10,000 faces from
  482 subjects");
* ``cpca``: PCA of the database; per group a Gaussian N(mu_g, Sigma_g) of the PCA coefficients;
* ``dr``: 5 subjects of one group, weights = Cartesian coordinates of (r, theta_1..4) with
  r ~ U[0.6, 1.3], theta ~ U[0, pi/2] (the paper's polar sampling), DR features (geometry/dr.py,
  reference = the mean head) interpolated as sum_i a_i D_i and decoded; the decoded head is
  translated so its centroid is the weighted mean of the subjects' centroids.

Each image's albedo is that of its closest database subject (paper's rule, via the scene sampler).
The held-out test set is rendered by ``digitaltwin synth --sampler gaussian`` with another seed:
fresh heads from the full prior, none of them in the database.

Usage::

    python experiments/regressor_populations.py --sampler dr --count 640 --out /tmp/pop_dr

Writes no results file: it renders the No-Aug / C-PCA / DR training sets that
``experiments/regressor_compare.py --ablation`` scores into
``experiments/results/regressor_ablation_fig6.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitaltwin_jax import load_head_model  # noqa: E402
from digitaltwin_jax.io.atomic import atomic_write, atomic_write_text  # noqa: E402
from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry  # noqa: E402
from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer  # noqa: E402
from digitaltwin_jax.synth.scene import SceneConfig, sample_scene  # noqa: E402
from digitaltwin_jax.synth.shapes import IdentityProjector, PopulationSource  # noqa: E402


def database(model, subjects: int, groups: int, seed: int):
    """``(coeffs (S, K), vertices (S, V, 3), group (S,))`` of the stand-in scan database."""
    rng = np.random.default_rng([seed, 482])
    a = rng.standard_normal((subjects, model.num_identity))
    v = model.vertices[None] + np.tensordot(a, model.identity_basis, axes=1)
    # k-means on the 10 leading coefficients, deterministic init (farthest point)
    x = a[:, :10]
    c = [x[0]]
    for _ in range(groups - 1):
        d = np.min([np.sum((x - ci) ** 2, 1) for ci in c], axis=0)
        c.append(x[int(np.argmax(d))])
    c = np.array(c)
    for _ in range(50):
        lab = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), 1)
        c = np.array([x[lab == g].mean(0) if np.any(lab == g) else c[g] for g in range(groups)])
    return a, v.astype(np.float64), lab


def make_sampler(kind: str, model, coeffs, verts, group):
    s = verts.shape[0]
    mean = verts.mean(0)

    def closest(v):
        d = ((verts - v[None]) ** 2).sum((1, 2))
        j = int(np.argmin(d))
        return j, int(group[j])

    if kind == "noaug":
        def sample(rng):
            j = int(rng.integers(s))
            return verts[j].astype(np.float32), j, int(group[j])
        return sample
    if kind == "cpca":
        flat = (verts - mean).reshape(s, -1)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        comps = vt  # (S, 3V)
        proj = flat @ comps.T
        stats = []
        for g in range(group.max() + 1):
            p = proj[group == g]
            stats.append((p.mean(0), np.cov(p.T) if len(p) > 1 else np.zeros((p.shape[1],) * 2)))

        def sample(rng):
            g = int(rng.integers(len(stats)))
            mu, cov = stats[g]
            x = rng.multivariate_normal(mu, cov, method="eigh")
            v = (mean.reshape(-1) + x @ comps).reshape(-1, 3)
            j, gg = closest(v)
            return v.astype(np.float32), j, gg
        return sample
    if kind == "dr":
        import jax

        from digitaltwin_jax.geometry.dr import prepare_dr

        ref = np.asarray(model.vertices, np.float64)
        dr = prepare_dr(ref, np.asarray(model.faces), anchor=int(model.nose_tip_index))
        with jax.enable_x64(True):
            feats = np.asarray(jax.jit(lambda d, v: d.encode(v))(dr, verts))
        decode = jax.jit(lambda d, f: d.decode(f))
        members = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
        cents = verts.mean(1)

        def sample(rng):
            g = int(rng.integers(len(members)))
            m = min(5, len(members[g]))
            idx = rng.choice(members[g], size=m, replace=False)
            r = rng.uniform(0.6, 1.3)
            th = rng.uniform(0, np.pi / 2, size=m - 1)
            a = np.empty(m)
            sin = 1.0
            for i in range(m - 1):
                a[i] = r * sin * np.cos(th[i])
                sin *= np.sin(th[i])
            a[m - 1] = r * sin
            f = np.tensordot(a, feats[idx], axes=1)
            with jax.enable_x64(True):
                v = np.asarray(decode(dr, f), np.float64)
            c = (a[:, None] * cents[idx]).sum(0) / a.sum()
            v = v - v.mean(0) + c
            j, gg = closest(v)
            return v.astype(np.float32), j, gg
        return sample
    raise ValueError(kind)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sampler", choices=("dr", "cpca", "noaug"), required=True)
    ap.add_argument("--count", type=int, default=640)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--shard-size", type=int, default=128)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--bank-size", type=int, default=32)
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_head_model("low")
    coeffs, verts, group = database(model, args.subjects, args.groups, seed=1)
    src = PopulationSource(make_sampler(args.sampler, model, coeffs, verts, group),
                           IdentityProjector(model.vertices, model.identity_basis), name=args.sampler)
    geom = uv_geometry(model.vertices, model.faces, model.uvs, model.uv_faces, model.landmark_indices, 512)
    bank = procedural_bank(geom, args.bank_size, args.seed)
    renderer = SceneRenderer(model, bank, RenderConfig())
    scfg = SceneConfig(image_size=args.size, photo_background_probability=0.0)
    n_shards = -(-args.count // args.shard_size)
    names = [f"shard_{k:05d}.npz" for k in range(n_shards)]
    atomic_write_text(out / "manifest.json", json.dumps({
        "config": {"seed": args.seed, "sampler": f"standin-{args.sampler}", "count": args.count,
                   "resolution": "low", "scene": {"image_size": args.size},
                   "database": {"subjects": args.subjects, "groups": args.groups, "seed": 1}},
        "shards": names}, indent=1))
    t0 = time.perf_counter()
    for k, name in enumerate(names):
        if (out / name).exists():
            continue
        rows = {"index": [], "images": [], "vertices": [], "expression": [], "subject": [], "group": []}
        for i in range(k * args.shard_size, min(args.count, (k + 1) * args.shard_size)):
            sc = sample_scene(i, args.seed, scfg, src, model, len(bank))
            res = renderer.render(sc)
            rows["index"].append(i)
            rows["images"].append(res.image)
            rows["vertices"].append(sc.vertices)
            rows["expression"].append(sc.expression)
            rows["subject"].append(sc.subject)
            rows["group"].append(sc.group)
        with atomic_write(out / name) as fh:
            np.savez(fh, **{key: np.asarray(val) for key, val in rows.items()})
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
