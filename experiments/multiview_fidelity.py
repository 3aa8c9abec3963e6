"""Multi-view fidelity (issue 16 item 3): ARMSE against the number of photos of one person, and the
focal error with shared against free intrinsics, on a synthetic multi-view set.

    python experiments/multiview_fidelity.py [--heads 40] [--seed 5001] [--views 1,2,3,4,5] [--out FILE]

The shared corrective field's runs (docs page "Several photos", Measurements):

    ... --heads 40 --seed 5001 --views 1,3,5 --corr-views 1,3,5 --corr-omegas 2.5,0.25 --free-views "" \
        --identity-views "" --out experiments/results/multiview_fidelity_corrective_s5001.json   # tuning
    ... --views 1,2,3,4,5 --nocorr-views 1,3,5 --free-views "" --identity-views "" \
        --out experiments/results/multiview_fidelity_corrective_s5002.json                     # test

Set: :func:`digitaltwin_jax.synth.multiview.make_multiview_set` (set (b)'s heads and photos: DR heads
extrapolated beyond the training radius with 1-3 mm of detail outside the identity modes, eyeballs,
random expressions, 24-135 mm lenses, blur, noise, JPEG), ``heads`` heads x 5 views of one camera at
yaws 0, -25, 25, -12, 12 (+-4) degrees with their own lighting and expression; cached under
``$DIGITALTWIN_CACHE_DIR/fidelity``.  The first ``k`` views of a head are its ``k``-view subset.
Only heads whose 5 views all have a detected face are scored (every row on the same heads).

Methods, for k = 1..5 views:

* ``multiview``: :func:`digitaltwin_jax.multiview.fit_views` with its defaults and shared intrinsics
  (one camera), starting from the guarded regressor at the mean identity embedding of the k views
  (:func:`digitaltwin_jax.multiview.combined_shape`); prediction = the shared neutral head;
* ``multiview_free``: the same with every view its own focal scale (free intrinsics);
* ``multiview_identity``: with the shared identity coefficients fitted too (``fit_identity=True``,
  lambda_identity 4); ``multiview_id16``: the same with lambda_identity 16.  On the tuning seed 5001
  (``results/multiview_fidelity_tuning_s5001.json``; there ``multiview`` was the identity fit and
  ``multiview_noid`` today's default) the identity fit lost, so the default does not fit it;
  ``multiview_fpv``: shared intrinsics with the focal prior counted once per photo;
  ``multiview_corr``: shared intrinsics with the corrective field shared by all photos
  (``MultiFitConfig(fit_corrective=True)``; its row has the paired difference to ``multiview`` at the
  same k as ``diff_vs_multiview``); ``multiview_corr<w>``: the same with omega_c = w (``--corr-omegas``);
  ``multiview_nocorr``: without it.  The field is on by default since the tuning run
  (``results/multiview_fidelity_corrective_s5001.json``, where ``multiview`` was without it);
* reference ``single_default``: the single-photo pipeline's default (guarded regressor + non-rigid
  fit with the corrective field, no identity fit) on view 0.

ARMSE (mm) at d = 95 mm by :func:`digitaltwin_jax.evaluation.fidelity.score_heads`; paired
differences (:func:`~digitaltwin_jax.evaluation.fidelity.paired_difference`, 95% t intervals) of k
views against 1 view (and of every variant against ``multiview`` at the same k); focal error |f_fit / f_true - 1| in % over every fitted view.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RADII = (95.0,)


def _root(heads: int, seed: int) -> Path:
    base = os.environ.get("DIGITALTWIN_CACHE_DIR", str(Path.home() / ".cache" / "digitaltwin_jax"))
    return Path(base) / "fidelity" / f"multiview_s{seed}_{heads}"


def run(heads: int = 80, seed: int = 5002, views=(1, 2, 3, 4, 5), free_views=(1, 3, 5), identity_views=(1, 3), id16_views=(), fpv_views=(),
        corr_views=(), corr_omegas=(), nocorr_views=(), calibrated_views=(), progress: bool = True) -> dict:
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import mean_interval, paired_difference, score_heads
    from digitaltwin_jax.multiview import MultiFitConfig, combined_shape, fit_views
    from digitaltwin_jax.regressor.data import load_eval_data
    from digitaltwin_jax.regressor.evaluate import predict
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.weights import load_regressor
    from digitaltwin_jax.synth.multiview import MultiViewConfig, make_multiview_set

    t0 = time.perf_counter()
    cfg = MultiViewConfig(heads=heads, seed=seed)
    root = make_multiview_set(_root(heads, seed), cfg, progress=progress)
    data, _ = load_eval_data(root, allow_expressions=True)
    nvw = cfg.views
    ok = data.valid().reshape(heads, nvw)
    use = np.flatnonzero(ok.all(axis=1))
    model = load_head_model("low")
    reg, guard = load_regressor(), load_guard()
    gt = data.vertices.reshape(heads, nvw, -1, 3)[use, 0]
    out = {"set": str(root), "heads": heads, "views_per_head": nvw, "seed": seed,
           "heads_all_views_found": int(len(use)), "faces_found": f"{int(data.valid().sum())}/{len(data)}",
           "yaws_deg": list(cfg.yaws_deg), "radius_mm": RADII[0], "rows": {}}
    preds, focal_err, seconds = {}, {}, {}
    from digitaltwin_jax.fitting import FitConfig

    variants = {
        "multiview": (MultiFitConfig(), True, views),
        "multiview_free": (MultiFitConfig(), False, free_views),
        "multiview_identity": (MultiFitConfig(fit_identity=True), True, identity_views),
        "multiview_id16": (MultiFitConfig(fit_identity=True, fit=FitConfig(lambda_identity=16.0)), True, id16_views),
        "multiview_fpv": (MultiFitConfig(focal_prior_per_view=True), True, fpv_views),
        "multiview_corr": (MultiFitConfig(fit_corrective=True), True, corr_views),
        "multiview_nocorr": (MultiFitConfig(fit_corrective=False), True, nocorr_views),
        "multiview_calibrated": (MultiFitConfig(), True, calibrated_views),
    }
    calibrated = None
    if calibrated_views:
        from digitaltwin_jax.multiview.reconstruct import identity_views_config
        from digitaltwin_jax.shape_prior.source import CalibratedShapeSource

        calibrated = CalibratedShapeSource(guard=guard)
    for w in corr_omegas:  # the shared field with another weight omega_c (paper: 25)
        variants[f"multiview_corr{w:g}"] = (MultiFitConfig(fit_corrective=True, fit=FitConfig(omega_c=w)), True, corr_views)
    for kind, (mcfg, shared, ks) in variants.items():
        for k in ks:
            name = f"{kind}_{k}"
            p = np.full((len(use), model.num_vertices, 3), np.nan, np.float32)
            ferr = []
            ts = time.perf_counter()
            for n, h in enumerate(use):
                idx = h * nvw + np.arange(k)
                groups = np.zeros(k, np.int64) if shared else None
                lw, vcfg = None, mcfg
                if kind == "multiview_calibrated":  # the shape prior at the mean embedding, identity shared
                    prior = calibrated.identity_prior(data.embeddings[idx].mean(axis=0), model)
                    start, lw, vcfg = prior.centre, prior.landmark_weights, identity_views_config(mcfg, prior)
                else:
                    start = combined_shape(model, data.embeddings[idx], reg, guard)
                try:
                    r = fit_views(model, data.landmarks[idx], data.image_sizes[idx], shape=start, config=vcfg,
                                  camera_groups=groups, landmark_weights=lw)
                except ValueError as e:
                    print(f"# {name} head {h}: {e}", file=sys.stderr)
                    continue
                if not r.success:
                    continue
                p[n] = r.neutral
                ferr += list(np.abs(r.intrinsics[:, 0, 0] / data.K[idx, 0, 0] - 1.0) * 100.0)
            seconds[name] = time.perf_counter() - ts
            preds[name] = p
            focal_err[name] = np.asarray(ferr)
            if progress:
                print(f"{name}: {seconds[name]:.0f} s", flush=True)
    # the single-photo default on view 0
    from digitaltwin_jax.regressor.evaluate import EvalData

    v0 = use * nvw
    sub = EvalData(data.vertices[v0], data.embeddings[v0], data.landmarks[v0], data.image_sizes[v0], data.sample_ids[v0],
                   K=data.K[v0], rotation=data.rotation[v0], expression=data.expression[v0])
    preds["single_default"] = predict(model, sub, reg, ("guarded+fit",), progress=False)["guarded+fit"]
    scores = {m: score_heads(model, gt, pr, radii=RADII).armse_mm[:, 0] for m, pr in preds.items()}
    for m, s in scores.items():
        row = {"armse_95": mean_interval(s).as_dict(), "n": int(np.isfinite(s).sum())}
        kind, _, k = m.rpartition("_")
        if kind.startswith("multiview") and f"{kind}_1" in scores and m != f"{kind}_1":
            row["diff_vs_1_view"] = paired_difference(s, scores[f"{kind}_1"]).as_dict()
        if kind.startswith("multiview_") and f"multiview_{k}" in scores:
            row["diff_vs_multiview"] = paired_difference(s, scores[f"multiview_{k}"]).as_dict()
        row["diff_vs_single_default"] = paired_difference(s, scores["single_default"]).as_dict()
        if m in focal_err and focal_err[m].size:
            row["focal_err_pct"] = mean_interval(focal_err[m]).as_dict()
            row["focal_err_pct_median"] = float(np.median(focal_err[m]))
        if m in seconds:
            row["seconds_per_head"] = seconds[m] / max(len(use), 1)
        out["rows"][m] = row
    out["per_head_armse_95"] = {m: [None if not np.isfinite(x) else float(x) for x in s] for m, s in scores.items()}
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", type=int, default=80)
    ap.add_argument("--seed", type=int, default=5002)
    ap.add_argument("--views", default="1,2,3,4,5")
    ap.add_argument("--free-views", default="1,3,5")
    ap.add_argument("--identity-views", default="1,3", help="views of the variant with the identity fit")
    ap.add_argument("--id16-views", default="", help="views of the variant with lambda_identity = 16")
    ap.add_argument("--fpv-views", default="", help="views of the variant with the focal prior counted per view")
    ap.add_argument("--corr-views", default="", help="views of the variant with the shared corrective field")
    ap.add_argument("--nocorr-views", default="", help="views of the variant without the shared corrective field")
    ap.add_argument("--corr-omegas", default="", help="omega_c values of further shared-field variants")
    ap.add_argument("--calibrated-views", default="", help="views of the variant started from the shipped shape "
                    "prior (issue 27) at the mean embedding, identity shared under its width")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "multiview_fidelity.json"))
    a = ap.parse_args(argv)
    ints = lambda t: tuple(int(x) for x in t.split(",") if x)  # noqa: E731
    res = run(a.heads, a.seed, ints(a.views), ints(a.free_views), ints(a.identity_views), ints(a.id16_views), ints(a.fpv_views),
              ints(a.corr_views), tuple(float(x) for x in a.corr_omegas.split(",") if x),
              ints(a.nocorr_views), ints(a.calibrated_views))
    from digitaltwin_jax.io.atomic import atomic_write_text

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(res, indent=1))
    for m, r in res["rows"].items():
        a95 = r["armse_95"]
        line = f"{m:18s} n={r['n']:3d} ARMSE95 {a95['mean']:.3f} [{a95['lo']:.3f}, {a95['hi']:.3f}]"
        if "diff_vs_1_view" in r:
            d = r["diff_vs_1_view"]
            line += f"  vs 1 view {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
        if "diff_vs_multiview" in r:
            d = r["diff_vs_multiview"]
            line += f"  vs multiview {d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
        if "focal_err_pct" in r:
            line += f"  focal err {r['focal_err_pct']['mean']:.1f}% (median {r['focal_err_pct_median']:.1f}%)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
