"""Calibrate the identity prior on real photos, without 3D truth (issue 27, items 1-3).

    python experiments/calibrate_prior.py evidence --set DIR          # per-photo landmark information -> DIR/evidence*.npz
    python experiments/calibrate_prior.py calibrate --set DIR [--out FILE] [--ship]

``DIR`` is a photo set with ``features.npz`` (``experiments/real_portraits.py``: 471 portraits of
members of the US Congress, one per person, split into person-disjoint tune / test halves).

**evidence**: per photo, the template fit (:func:`digitaltwin_jax.fitting.fit`, default settings)
gives a reference camera; :func:`digitaltwin_jax.shape_prior.evidence.linearise` turns the inner
landmarks into the information ``(P, b, Q, n)`` about the 100 identity coefficients, twice: with the
model's landmarks as they are ("pipeline": the shared shift then holds the detector's convention as
well as the people's) and with the detector's offsets measured on renders added
(``experiments/results/multiview_landmark_offsets_s5001.json``, seed 5001; "people").  Both use the
detector's per-point noise measured there (relative), and the blendshape prior of eq. 3
(``omega_r / sigma^2``).  The shipped regressor's prediction gives each photo's deviation ``d`` in
identity coefficients, and the guard's Mahalanobis distance ``m``.

**calibrate**: empirical Bayes (:func:`digitaltwin_jax.shape_prior.calibrate.calibrate`) on the
*tune* half for nested priors, each scored by the mean log evidence of the *test* half's landmarks
(held-out people):

* ``template``: ICT mean, no identity fit (today's default: the guard's factor is 0 on every real photo);
* ``corrected``: template corrected toward real people, no identity fit;
* ``prior``: ICT mean + trusted fraction of the regressor, identity fitted under sigma(m);
* ``prior_fixed``: the same without identity fit (trust only);
* ``corrected+prior``: all of it.

each with and without the detector offsets; results file ``experiments/results/prior_calibration.json``.
``--ship`` writes the chosen rule (highest held-out
evidence) and both template variants into ``digitaltwin_jax/assets/shape_prior.json``.
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
ROOT = HERE.parent
OFFSETS = HERE / "results" / "multiview_landmark_offsets_s5001.json"
VARIANTS = ("pipeline", "people")


def _evidence_path(set_dir, variant):
    return Path(set_dir).expanduser() / f"evidence_{variant}.npz"


def detector_model():
    """``(offsets (68, 3) mm, relative noise (68,))`` of the detector measured on renders (seed 5001)."""
    d = json.loads(OFFSETS.read_text())
    noise = np.asarray(d["noise_pct_eye"], np.float64)
    inner = noise[17:]
    return np.asarray(d["offsets_mm"], np.float64), noise / inner.mean()


def evidence(set_dir, progress=True) -> dict:
    from digitaltwin_jax.fitting import FitConfig, fit
    from digitaltwin_jax.geometry.rotations import quaternion_to_matrix_np
    from digitaltwin_jax.io.atomic import atomic_write_bytes
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.shape_source import RegressorShapeSource
    from digitaltwin_jax.shape_prior.evidence import linearise
    from digitaltwin_jax.shape_prior.prior import identity_coefficients

    set_dir = Path(set_dir).expanduser()
    z = dict(np.load(set_dir / "features.npz"))
    model = load_head_model("low")
    cfg = FitConfig()
    src = RegressorShapeSource()
    guard = load_guard()
    offsets, noise = detector_model()
    beta_precision = cfg.omega_r / cfg.expression_sigma ** 2
    n = len(z["files"])
    out = {v: {k: [] for k in ("P", "b", "q0", "dof")} for v in VARIANTS}
    dev, dist = [], []
    t0 = time.time()
    for i in range(n):
        lm, size = z["landmarks"][i], tuple(int(x) for x in z["image_size"][i])
        res = fit(model, lm, size, config=cfg)
        R = quaternion_to_matrix_np(np.asarray(res.params.q, np.float64))
        focal = float(res.intrinsics[0, 0])
        for v in VARIANTS:
            e = linearise(model, lm, size, R, np.asarray(res.params.t, np.float64), focal,
                          sample_indices=res.landmark_indices, sample_weights=res.landmark_weights,
                          offsets=offsets if v == "people" else None, noise=noise, beta_precision=beta_precision,
                          focal_precision=cfg.omega_r * cfg.lambda_f)
            for k in out[v]:
                out[v][k].append(getattr(e, k))
        pred = src.predict_embedding(z["embeddings"][i], model)
        dev.append(identity_coefficients(model, pred))
        dist.append(float(guard.distance(z["embeddings"][i])[0]))
        if progress and (i + 1) % 50 == 0:
            print(f"evidence {i + 1}/{n} ({time.time() - t0:.0f} s)", flush=True)
    for v in VARIANTS:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(a, np.float64) for k, a in out[v].items()}, deviation=np.asarray(dev),
                 distance=np.asarray(dist), halves=z["halves"], files=z["files"], persons=z["persons"])
        atomic_write_bytes(_evidence_path(set_dir, v), buf.getvalue())
    return {"photos": n, "seconds": round(time.time() - t0, 1),
            "distance": {"min": float(np.min(dist)), "median": float(np.median(dist)), "max": float(np.max(dist))},
            "guard_factor_max": float(np.max(guard.factor(z["embeddings"]))),
            "guard_m_ref": guard.m_ref, "guard_m_max": guard.m_max}


def load_evidence(set_dir, variant):
    from digitaltwin_jax.shape_prior.calibrate import EvidenceSet

    z = np.load(_evidence_path(set_dir, variant))
    ev = EvidenceSet(z["P"], z["b"], z["q0"], z["dof"], z["deviation"], z["distance"])
    return ev, np.asarray(z["halves"]).astype(str)


MODELS = {  # name: (calibrate() switches, uses the template for real people)
    "template": (dict(fit_trust=False, identity=False), False),
    "corrected": (dict(fit_trust=False, identity=False), True),
    "prior_fixed": (dict(fit_trust=True, identity=False), False),
    "prior": (dict(fit_trust=True, identity=True), False),
    "corrected+prior": (dict(fit_trust=True, identity=True), True),
    # the identity prior's width held at the fit's own (omega_r lambda_identity = 40, chosen on
    # out-of-distribution renders): the landmark evidence's own width (sigma ~ 2) lets identity explain
    # the detector's convention, and cost +0.4 to +0.6 mm on set (b) (experiments/results/prior_armse_b.json)
    "prior@fitwidth": (dict(fit_trust=True, identity=True, identity_strength="fit"), False),
    "corrected+prior@fitwidth": (dict(fit_trust=True, identity=True, identity_strength="fit"), True),
}


def _template_stats(model, tune, test, strength) -> tuple[np.ndarray, dict]:
    from digitaltwin_jax.shape_prior.calibrate import mean_identity

    c, se, a = mean_identity(tune, strength)
    c_test, _, _ = mean_identity(test, strength)
    disp = np.linalg.norm(np.tensordot(c, model.identity_basis, 1), axis=1)
    lmd = np.tensordot(c, model.identity_basis, 1)[model.landmark_indices]
    return c, {"norm": float(np.linalg.norm(c)), "cosine_tune_test": float(c @ c_test / np.linalg.norm(c) / np.linalg.norm(c_test)),
               "face_rms_mm": float(np.sqrt(np.mean(disp[model.face_mask] ** 2))), "face_max_mm": float(disp[model.face_mask].max()),
               "jaw_width_change_mm": float(lmd[16, 0] - lmd[0, 0]),
               "modes_beyond_3_se": int(np.sum(np.abs(c / se) > 3)),
               "person_spread": float(np.mean(np.linalg.norm(a - c, axis=1))), "strength": strength}


def run_calibration(set_dir) -> tuple[dict, dict]:
    from digitaltwin_jax.fitting import FitConfig
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.shape_prior.calibrate import calibrate, heldout_log_evidence, photo_log_evidence

    model = load_head_model("low")
    cfg = FitConfig()
    strength = cfg.omega_r * cfg.lambda_identity
    out = {"set": str(set_dir), "models": {}, "templates": {}, "offsets_source": str(OFFSETS.relative_to(ROOT))}
    rules, base_test = {}, None
    for variant in VARIANTS:
        ev, halves = load_evidence(set_dir, variant)
        tune, test = ev.subset(halves == "tune"), ev.subset(halves == "test")
        out["counts"] = {"tune": len(tune), "test": len(test)}
        c, out["templates"][variant] = _template_stats(model, tune, test, strength)
        print(f"template {variant}: {json.dumps(out['templates'][variant])}", flush=True)
        for name, (kw, corrected) in MODELS.items():
            t0 = time.time()
            kw = {k: (strength if v == "fit" else v) for k, v in kw.items()}
            rule, info = calibrate(tune, fit_template=False, template=c if corrected else None, **kw)
            ho = heldout_log_evidence(rule, test)
            per = photo_log_evidence(rule, test)
            key = f"{name}/{variant}"
            rules[key] = rule
            if base_test is None:
                base_test = per  # today's model: ICT template, no identity fit, no offsets
            diff = per - base_test
            out["models"][key] = {
                "heldout_log_evidence": ho, "tune": info, "seconds": round(time.time() - t0, 1),
                "paired_vs_template": {"mean": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(diff.size))},
                "trust_test": {"median": float(np.median(rule.trust(test.distance))),
                               "min": float(np.min(rule.trust(test.distance))),
                               "max": float(np.max(rule.trust(test.distance)))},
                "sigma_test_median": float(np.median(rule.sigma(test.distance))),
                "kappa": rule.kappa, "rule": rule.to_json(),
            }
            print(f"{key:26s} held-out {ho['mean']:9.3f} (se {ho['se']:.3f})  paired {diff.mean():+8.3f} "
                  f"± {diff.std(ddof=1) / np.sqrt(diff.size):.3f}  tau {rule.tau.round(3)}  "
                  f"sigma {out['models'][key]['sigma_test_median']:.3f}  kappa {rule.kappa:.2f}", flush=True)
    return out, rules


def ship(out, rules, default_template=None, default_reason="") -> dict:
    """Write ``assets/shape_prior.json``: ``ict`` = the calibrated prior on the ICT mean, ``pipeline`` /
    ``people`` = the calibrated prior on each template for real people; the default template is the
    one whose held-out evidence is highest unless ``default_template`` names another."""
    from digitaltwin_jax.model.head_model import asset_path
    from digitaltwin_jax.shape_prior.prior import ShapePrior, save_shape_prior

    chosen = {"ict": "prior@fitwidth/pipeline", "pipeline": "corrected+prior@fitwidth/pipeline",
              "people": "corrected+prior@fitwidth/people"}
    scores = {t: out["models"][k]["heldout_log_evidence"]["mean"] for t, k in chosen.items()}
    default = max(scores, key=scores.get) if default_template is None else default_template
    _, noise = detector_model()
    record = {
        "calibration_set": {"source": "voteview/member_photos portraits, one per member of the US Congress born >= 1900 "
                                      "(experiments/real_portraits.py); person-disjoint halves",
                            "photos_tune": out["counts"]["tune"], "photos_test": out["counts"]["test"]},
        "method": "empirical Bayes on the inner landmarks' evidence (digitaltwin_jax.shape_prior), "
                  "experiments/calibrate_prior.py; templates = mean fitted identity of the tune half "
                  "(fit's identity prior omega_r lambda_identity)",
        "rules_from": chosen, "heldout": scores, "default_chosen_by": "held-out evidence" if default_template is None
        else default_reason, "templates": out["templates"], "detector_model": out["offsets_source"]}
    prior = ShapePrior({t: rules[k] for t, k in chosen.items()}, default, noise, record)
    save_shape_prior(prior, asset_path("shape_prior.json"))
    return {"default_template": default, "heldout": scores}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evidence")
    e.add_argument("--set", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--set", required=True)
    c.add_argument("--out", default=str(HERE / "results" / "prior_calibration.json"))
    c.add_argument("--ship", action="store_true", help="write digitaltwin_jax/assets/shape_prior.json")
    c.add_argument("--default-template", default=None)
    c.add_argument("--default-reason", default="", help="why --default-template (recorded in the asset)")
    a = ap.parse_args(argv)
    if a.cmd == "evidence":
        print(json.dumps(evidence(a.set), indent=1))
    else:
        from digitaltwin_jax.io.atomic import atomic_write_text

        res, rules = run_calibration(a.set)
        if a.ship:
            res["shipped"] = ship(res, rules, a.default_template, a.default_reason)
            print(json.dumps(res["shipped"]))
        atomic_write_text(a.out, json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
