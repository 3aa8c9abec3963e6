"""Calibrate the regressor's out-of-distribution guard and the fit's priors on *tuning* sets.

    python experiments/fidelity_sets.py          # renders the tuning sets first (cached)
    python experiments/calibrate_fidelity.py [--write-guard] [--skip-priors]

Nothing here touches the sets the fidelity benchmark reports (seeds 1001 / 2001); see
``experiments/fidelity_sets.py`` for the seeds.

1. Guard (``digitaltwin_jax.regressor.guard``): embedding statistics from 180 in-distribution
   renders (``guard_stats``), ``m_ref`` = 95th percentile of the other (held-out) renders' Mahalanobis
   distances; ``power`` chosen on the out-of-distribution tuning set ``tune_ood`` by the mean ARMSE
   (d = 95 mm) of ``template + s (regressor - template)`` measured at s = 0, 0.25, 0.5, 0.75, 1.
   ``--write-guard`` saves it next to the shipped weights (``guard.npz``, ``guard.json``).
2. Fit priors: for each candidate FitConfig, on ``tune_ood`` (expressions, 24-135 mm lenses) the
   ARMSE (d = 95) of the template + fit, the median focal error and the landmark RMSE, and on 40
   neutral in-distribution renders (``guard_stats``) the mean sum of blendshape weights.
Results: ``experiments/results/fidelity_calibration.json`` (and printed).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fidelity_sets import SEEDS, default_root  # noqa: E402

FACTORS = (0.0, 0.25, 0.5, 0.75, 1.0)


def calibrate_guard(model, reg, stats_data, tune_data, write: bool) -> dict:
    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.regressor.guard import calibrate_power, make_guard, save_guard
    from digitaltwin_jax.regressor.weights import shipped_regressor_dir

    e = stats_data.embeddings[stats_data.valid()]
    train, held = e[:180], e[180:]
    guard = make_guard(train, held)
    ok = tune_data.valid()
    pred = np.asarray(reg(tune_data.embeddings[ok]), np.float64)
    tmpl = np.asarray(model.vertices, np.float64)
    errs = np.full((int(ok.sum()), len(FACTORS)), np.nan)
    for j, s in enumerate(FACTORS):
        heads = (tmpl[None] + s * (pred - tmpl[None])).astype(np.float32)
        errs[:, j] = score_heads(model, tune_data.vertices[ok], heads, radii=(95.0,)).armse_mm[:, 0]
    dist = guard.distance(tune_data.embeddings[ok])
    power, curve = calibrate_power(dist, FACTORS, errs, guard.m_ref)
    record = {
        "stats_set": {"sampler": "regressor training config (in-distribution)", "seed": SEEDS["guard_stats"],
                      "train": int(train.shape[0]), "heldout": int(held.shape[0])},
        "power_set": {"kind": "out_of_distribution", "seed": SEEDS["tune_ood"], "n": int(ok.sum())},
        "factors": list(FACTORS), "mean_armse95_at_factor": [float(x) for x in np.nanmean(errs, 0)],
        "mean_armse95_at_power": curve,
        "tune_median_mahalanobis": float(np.nanmedian(dist)),
        "heldout_median_mahalanobis": float(np.nanmedian(guard.distance(held))),
    }
    m_max = float(np.nanquantile(dist, 0.95))
    record["m_max_rule"] = "95th percentile of the power set's distances; the guard fades to the template by 1.25 m_max"
    guard = dataclasses.replace(guard, power=power, m_max=m_max, record=record)
    if write:
        save_guard(guard, shipped_regressor_dir())
    return {**record, "m_ref": guard.m_ref, "m_max": m_max, "power": power if math.isfinite(power) else "inf"}


def _prior_row(model, cfg, tune, neutral, label, template_armse) -> dict:
    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.regressor.evaluate import MethodSpec, predict_with_fits

    shape = "identity" if cfg.fit_identity else "mean"
    t = time.perf_counter()
    heads, fits = predict_with_fits(model, tune, None, {"m": MethodSpec(shape, cfg)}, progress=False)
    f = fits["m"]
    ok = np.all(np.isfinite(heads["m"]), axis=(1, 2))
    sc = score_heads(model, tune.vertices[ok], heads["m"][ok], radii=(95.0,))
    focal = np.abs(f.intrinsics[:, 0, 0] / tune.K[:, 0, 0] - 1.0) * 100.0
    _, fn = predict_with_fits(model, neutral, None, {"m": MethodSpec(shape, cfg)}, progress=False)
    return {"config": label, "armse95": float(np.nanmean(sc.armse_mm)),
            "diff_template95": float(np.nanmean(sc.armse_mm[:, 0] - template_armse[ok])),
            "focal_err_median_pct": float(np.nanmedian(focal)), "landmark_rmse_px": float(np.nanmean(f.landmark_rmse_px)),
            "neutral_sum_beta": float(np.nanmean(fn["m"].beta.sum(1))),
            "expr_sum_beta_tune": float(np.nanmean(f.beta.sum(1))), "seconds": time.perf_counter() - t}


def parse_configs(text: str) -> list:
    """``"expression_sigma=0.1; lambda_f=20,expression_sigma=0.1"`` -> [(label, FitConfig), ...]."""
    from digitaltwin_jax.fitting import FitConfig

    out = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        kw = {}
        for pair in item.split(","):
            k, v = (x.strip() for x in pair.split("="))
            kw[k] = v.lower() == "true" if v.lower() in ("true", "false") else float(v)
        out.append((item, FitConfig(**kw)))
    return out


def calibrate_priors(model, stats_data, tune_data, grid=None) -> list:
    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.fitting import FitConfig
    from digitaltwin_jax.regressor.evaluate import EvalData

    idx = np.flatnonzero(stats_data.valid())[:40]
    neutral = EvalData(stats_data.vertices[idx], stats_data.embeddings[idx], stats_data.landmarks[idx],
                       stats_data.image_sizes[idx], stats_data.sample_ids[idx], stats_data.K[idx],
                       stats_data.rotation[idx], stats_data.expression[idx])
    grid = grid or [
        ("paper (omega_c 25, sigma 0.3, lambda_f 5)", FitConfig()),
        ("no corrective", FitConfig(fit_corrective=False)),
        ("omega_c 2.5", FitConfig(omega_c=2.5)),
        ("omega_c 0.25", FitConfig(omega_c=0.25)),
        ("sigma 0.2", FitConfig(expression_sigma=0.2)),
        ("sigma 0.15", FitConfig(expression_sigma=0.15)),
        ("lambda_f 20", FitConfig(lambda_f=20.0)),
        ("lambda_f 80", FitConfig(lambda_f=80.0)),
        ("identity, lambda_id 1", FitConfig(fit_identity=True)),
        ("identity, lambda_id 4", FitConfig(fit_identity=True, lambda_identity=4.0)),
        ("identity, lambda_id 16", FitConfig(fit_identity=True, lambda_identity=16.0)),
    ]
    # the template's per-item ARMSE once (the same for every candidate; NaN where no face)
    ok = tune_data.valid()
    tmpl = np.full(len(tune_data), np.nan)
    tmpl[ok] = score_heads(model, tune_data.vertices[ok],
                           np.broadcast_to(model.vertices, tune_data.vertices[ok].shape).astype(np.float32),
                           radii=(95.0,)).armse_mm[:, 0]
    rows = []
    for label, cfg in grid:
        r = _prior_row(model, cfg, tune_data, neutral, label, tmpl)
        print(json.dumps(r), flush=True)
        rows.append(r)
    return rows


def main(argv=None) -> int:
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.regressor.data import load_eval_data
    from digitaltwin_jax.regressor.weights import load_regressor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(default_root()))
    ap.add_argument("--write-guard", action="store_true")
    ap.add_argument("--skip-priors", action="store_true")
    ap.add_argument("--skip-guard", action="store_true")
    ap.add_argument("--configs", default=None, help='FitConfig overrides, e.g. "expression_sigma=0.1; lambda_f=20"')
    ap.add_argument("--tag", default="priors", help="key of the prior rows in the results file")
    a = ap.parse_args(argv)
    root = Path(a.root)
    model = load_head_model("low")
    stats_data, _ = load_eval_data(root / "guard_stats")
    tune_data, _ = load_eval_data(root / "tune_ood", allow_expressions=True)
    out = {}
    if not a.skip_guard:
        out["guard"] = calibrate_guard(model, load_regressor(), stats_data, tune_data, a.write_guard)
        print(json.dumps(out["guard"], indent=1), flush=True)
    if not a.skip_priors:
        out[a.tag] = calibrate_priors(model, stats_data, tune_data, parse_configs(a.configs) if a.configs else None)
    path = HERE / "results" / "fidelity_calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
