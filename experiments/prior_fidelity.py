"""The calibrated shape prior on renders with known heads (issue 27, items 2 and 5): ARMSE, and does the
calibration recover the right trust?

    python experiments/prior_fidelity.py armse --set b [--n 100] [--prior FILE] [--out FILE]
    python experiments/prior_fidelity.py trust --set b [--n 100] [--out FILE]
    python experiments/prior_fidelity.py retrieval [--real DIR] [--prior FILE] [--out FILE]

Results files: ``experiments/results/prior_armse_<set>.json``, ``prior_trust_<set>.json`` and
``prior_retrieval.json``.

Sets: the fidelity benchmark's synthetic sets (``benchmarks/bench_fidelity.py``; (a) in-distribution
seed 1001, (b) out-of-distribution seed 2001), cached under ``~/.cache/digitaltwin_jax/fidelity``.

**armse**: every shape source followed by the non-rigid fit, paired ARMSE (d = 95 mm) against the
ICT template and against today's default (guarded regressor): ``mean+fit``, ``guarded+fit``, the
corrected templates (``pipeline``, ``people``) without identity fit, and the calibrated prior with each
template (identity fitted around ``c + tau(m) d`` under ``sigma(m)``).  The prior is the shipped
``digitaltwin_jax/assets/shape_prior.json`` unless ``--prior`` names another.

**trust**: the right trust where the truth is known.  On the render set the true identity
coefficients ``a_i`` (least squares of the true head) give the truth-optimal trust
``tau* = sum <d_i, a_i> / sum |d_i|^2`` (regression of the truth on the regressor's deviation), and
also the trust that minimises the mean ARMSE of ``template + tau (regressor - template)``.  Empirical
Bayes on the same renders' *landmarks only* (:mod:`digitaltwin_jax.shape_prior.calibrate`, ICT template,
constant trust) must land within 0.1 of them.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))


def load_set(key: str, n: int):
    import bench_fidelity as bf

    from digitaltwin_jax.regressor.data import load_eval_data

    folder = bf.cache_root() / f"{'eval_in' if key == 'a' else 'eval_ood'}_{n}"
    if not folder.exists():
        raise SystemExit(f"set ({key}) is not cached at {folder}: run benchmarks/bench_fidelity.py first")
    data, _ = load_eval_data(folder, allow_expressions=(key == "b"))
    return data


def heads_for(model, data, prior, progress=True, only=None) -> dict:
    """``{method: (N, V, 3) neutral heads}`` (NaN rows where the front end found no face)."""
    from digitaltwin_jax.fitting import FitConfig
    from digitaltwin_jax.pipeline import _default_fit
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.shape_source import RegressorShapeSource
    from digitaltwin_jax.shape_prior.source import CalibratedShapeSource

    guard = load_guard()
    reg = RegressorShapeSource()
    sources = {t: CalibratedShapeSource(prior, template=t, regressor=reg, guard=guard) for t in prior.rules}
    n, nv = len(data), model.num_vertices
    ok = data.valid()
    names = ["mean+fit", "guarded+fit"] + [f"corrected_{t}+fit" for t in prior.rules if t != "ict"] + \
        [f"calibrated_{t}+fit" for t in prior.rules]
    names = [k for k in names if only is None or k in only or k in ("mean+fit", "guarded+fit")]
    out = {k: np.full((n, nv, 3), np.nan, np.float32) for k in names}
    trust = {t: np.full(n, np.nan) for t in prior.rules}
    cfg = FitConfig()
    t0 = time.time()
    for j, i in enumerate(np.flatnonzero(ok)):
        lm, hw, e = data.landmarks[i], tuple(int(x) for x in data.image_sizes[i]), data.embeddings[i]
        reg_v = reg.predict_embedding(e, model)
        shapes = {"mean+fit": model.vertices.astype(np.float32),
                  "guarded+fit": guard.apply(model.vertices, reg_v[None], e[None])[0]}
        for t in prior.rules:
            if t != "ict":
                shapes[f"corrected_{t}+fit"] = prior.template_vertices(model, t)
            p = sources[t].identity_prior(e, model)
            shapes[f"calibrated_{t}+fit"] = p
            trust[t][i] = p.info["trust"]
        for k, s in shapes.items():
            if k not in out:
                continue
            try:
                r = _default_fit(model, lm, hw, s, config=cfg)
            except ValueError:
                continue
            if bool(np.all(r.success)):
                beta = np.asarray(r.params.beta, np.float64)
                out[k][i] = (np.asarray(r.vertices, np.float64) - np.tensordot(beta, model.expression_basis, 1)).astype(np.float32)
        if progress and (j + 1) % 20 == 0:
            print(f"fits {j + 1}/{int(ok.sum())} ({time.time() - t0:.0f} s)", flush=True)
    return out, trust


def run_armse(key, n, prior_path=None, only=None) -> dict:
    from digitaltwin_jax.evaluation.fidelity import paired_difference, score_heads
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.shape_prior.prior import load_shape_prior

    model = load_head_model("low")
    data = load_set(key, n)
    prior = load_shape_prior(prior_path)
    heads, trust = heads_for(model, data, prior, only=only)
    scores = {k: score_heads(model, data.vertices, h, radii=(95.0,)).armse_mm[:, 0] for k, h in heads.items()}
    rows = {}
    for k, s in scores.items():
        ok = np.isfinite(s) & np.isfinite(scores["mean+fit"]) & np.isfinite(scores["guarded+fit"])
        rows[k] = {"armse95_mean": float(np.nanmean(s)), "n": int(np.isfinite(s).sum()),
                   "vs_template": paired_difference(s[ok], scores["mean+fit"][ok]).__dict__,
                   "vs_guarded": paired_difference(s[ok], scores["guarded+fit"][ok]).__dict__}
        print(f"({key}) {k:28s} {rows[k]['armse95_mean']:.3f} mm  vs template {rows[k]['vs_template']['mean']:+.3f} "
              f"[{rows[k]['vs_template']['lo']:+.3f}, {rows[k]['vs_template']['hi']:+.3f}]  vs guarded "
              f"{rows[k]['vs_guarded']['mean']:+.3f} [{rows[k]['vs_guarded']['lo']:+.3f}, {rows[k]['vs_guarded']['hi']:+.3f}]",
              flush=True)
    return {"set": key, "n": n, "rows": rows,
            "trust": {t: {"median": float(np.nanmedian(v)), "min": float(np.nanmin(v)), "max": float(np.nanmax(v))}
                      for t, v in trust.items()},
            "per_item_armse95": {k: [None if not np.isfinite(x) else float(x) for x in s] for k, s in scores.items()}}


def run_trust(key, n) -> dict:
    """Empirical-Bayes trust from the renders' landmarks against the truth-optimal trust."""
    from calibrate_prior import evidence as make_evidence
    from calibrate_prior import load_evidence

    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.io.atomic import atomic_write_bytes
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.regressor.shape_source import RegressorShapeSource
    from digitaltwin_jax.shape_prior.calibrate import calibrate
    from digitaltwin_jax.shape_prior.prior import identity_coefficients

    import bench_fidelity as bf

    model = load_head_model("low")
    data = load_set(key, n)
    ok = data.valid()
    folder = bf.cache_root() / f"prior_evidence_{key}_{n}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "evidence_pipeline.npz").exists():
        buf = io.BytesIO()
        ids = np.asarray(data.sample_ids)[ok].astype(str)
        np.savez(buf, files=ids, persons=ids, halves=np.array(["tune"] * ok.sum()),
                 landmarks=data.landmarks[ok], embeddings=data.embeddings[ok], image_size=data.image_sizes[ok])
        atomic_write_bytes(folder / "features.npz", buf.getvalue())
        make_evidence(folder)
    ev, _ = load_evidence(folder, "pipeline")
    truth = np.array([identity_coefficients(model, v) for v in data.vertices[ok]])
    d = ev.deviation
    tau_coeff = float(np.sum(d * truth) / np.sum(d * d))
    # ARMSE of template + tau (regressor - template), no fit, over a grid of tau
    reg = RegressorShapeSource()
    preds = np.array([reg.predict_embedding(e, model) for e in data.embeddings[ok]], np.float64)
    grid = np.linspace(0.0, 1.0, 11)
    armse = []
    for tau in grid:
        h = model.vertices[None] + tau * (preds - model.vertices[None])
        armse.append(float(np.nanmean(score_heads(model, data.vertices[ok], h, radii=(95.0,)).armse_mm[:, 0])))
    tau_armse = float(grid[int(np.argmin(armse))])
    res = {}
    for name, kw in (("trust_only", dict(fit_template=False, identity=False, trust_slope=False)),
                     ("trust+identity", dict(fit_template=False, trust_slope=False, sigma_slope=False)),
                     ("template+trust+identity", dict(trust_slope=False, sigma_slope=False))):
        rule, info = calibrate(ev, **kw)
        res[name] = {"tau": float(rule.tau[0]), "sigma": float(rule.sigma(rule.m0)), "kappa": rule.kappa,
                     "template_norm": float(np.linalg.norm(rule.template)), "converged": info["converged"]}
        print(f"({key}) EB {name:24s} tau {rule.tau[0]:.3f}  sigma {res[name]['sigma']:.3f}  kappa {rule.kappa:.2f}  "
              f"|c| {res[name]['template_norm']:.2f}", flush=True)
    print(f"({key}) truth: tau* (coefficients) {tau_coeff:.3f}, tau* (ARMSE grid) {tau_armse:.1f}; "
          f"ARMSE at tau = 0 / 1: {armse[0]:.3f} / {armse[-1]:.3f}", flush=True)
    return {"set": key, "n": int(ok.sum()), "tau_truth_coefficients": tau_coeff, "tau_truth_armse_grid": tau_armse,
            "armse95_grid": dict(zip([round(float(g), 2) for g in grid], armse)), "eb": res,
            "distance_median": float(np.median(ev.distance))}


def run_retrieval(set_dir, prior_path=None, only=None) -> dict:
    """Same-person rank-1 retrieval of each method's heads on a real photo set with ``features.npz``
    (``experiments/real_portraits.py features``), on all persons and on the test half's persons."""
    from digitaltwin_jax.evaluation.fidelity import retrieval, shape_distance_matrix
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.regressor.evaluate import EvalData
    from digitaltwin_jax.shape_prior.prior import load_shape_prior

    z = dict(np.load(Path(set_dir).expanduser() / "features.npz"))
    model = load_head_model("low")
    n = len(z["files"])
    data = EvalData(np.zeros((n, model.num_vertices, 3), np.float32), z["embeddings"], z["landmarks"],
                    z["image_size"], z["files"])
    heads, trust = heads_for(model, data, load_shape_prior(prior_path), progress=False, only=only)
    persons = np.asarray(z["persons"]).astype(str)
    pid = np.unique(persons, return_inverse=True)[1]
    test = np.asarray(z["halves"]).astype(str) == "test"
    out = {"photos": n, "persons": int(pid.max() + 1), "test_photos": int(test.sum()),
           "test_persons": int(np.unique(pid[test]).size), "rows": {}}
    for k, h in heads.items():
        d = shape_distance_matrix(h, model.face_mask)
        r_all = retrieval(d, pid).as_dict()
        r_test = retrieval(d[np.ix_(test, test)], pid[test]).as_dict()
        out["rows"][k] = {"all": r_all, "test": r_test}
        print(f"retrieval {k:28s} all {r_all['rank1']:.3f} (chance {r_all['chance']:.3f})  test half "
              f"{r_test['rank1']:.3f} [{r_test['rank1_lo']:.2f}, {r_test['rank1_hi']:.2f}] "
              f"(chance {r_test['chance']:.3f})", flush=True)
    out["trust"] = {t: float(np.nanmedian(v)) for t, v in trust.items()}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=("armse", "trust", "retrieval"))
    ap.add_argument("--real", default="~/.cache/digitaltwin_jax/real/pairs", help="retrieval: photo set folder")
    ap.add_argument("--set", choices=("a", "b"), default="b")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--prior", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--methods", default=None, help="comma-separated subset (mean+fit and guarded+fit always run)")
    a = ap.parse_args(argv)
    from digitaltwin_jax.io.atomic import atomic_write_text

    if a.cmd == "retrieval":
        only = None if a.methods is None else a.methods.split(",")
        res = run_retrieval(a.real, a.prior, only)
        out = Path(a.out) if a.out else HERE / "results" / "prior_retrieval.json"
    else:
        only = None if a.methods is None else a.methods.split(",")
        res = run_armse(a.set, a.n, a.prior, only) if a.cmd == "armse" else run_trust(a.set, a.n)
        out = Path(a.out) if a.out else HERE / "results" / f"prior_{a.cmd}_{a.set}.json"
    atomic_write_text(out, json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
