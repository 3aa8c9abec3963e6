"""Domain alignment of identity embeddings before the shape regressor (issue 14, item 3): does
moving photo embeddings onto the training renders' statistics help?

    python experiments/realism_alignment.py --real DIR --halves SPLIT.json [--renders ABLATION_ROOT] [--out FILE]

Alignments (statistics: mean and Ledoit-Wolf covariance,
:func:`~digitaltwin_jax.evaluation.fidelity.fit_embedding_stats`):

* ``mean``: ``x - mu_src + mu_train``;
* ``coral``: ``(x - mu_src) C_src^{-1/2} C_train^{1/2} + mu_train`` (CORAL: second moments too).

``train`` = the shipped guard's statistics of the shipped regressor's training embeddings (so the
guard's Mahalanobis distance of an aligned embedding to them is the quantity the guard acts on).

Two evaluations, each with statistics from data that is not scored:

1. real photos: ``src`` = half A of the Congress portraits (``realism_photo_split.json``); on half B
   (never used for a choice): Mahalanobis distance to the training statistics, guard factor, and
   the Fréchet distance / real -> nearest render distance to the recipe's renders
   (``ABLATION_ROOT/recipe.npz`` of ``realism_ablation.py``, when given); shapes have no ground truth
   here, so also the mean change of the regressor's prediction (mm RMS over vertices);
2. fidelity set (b) (``eval_ood_100``, ground-truth heads): (i) the photo alignment applied to every
   input, as a deployed pre-processing would be (it cannot tell photos from renders); (ii) ``src`` =
   the guard's own out-of-distribution calibration set (``tune_ood``, seed 3001, never reported),
   the best case of a known shift.  Raw and guarded ARMSE at d = 95 mm with paired t intervals
   against the unaligned regressor.

Results file: ``experiments/results/realism_alignment.json`` (docs: Experiments, "Domain alignment
of the embeddings").
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))


def _sqrtm_sym(c, inverse=False):
    w, v = np.linalg.eigh((c + c.T) / 2.0)
    w = np.clip(w, 1e-12, None)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


def covariance(stats) -> np.ndarray:
    """``(D, D)`` covariance of an :class:`EmbeddingStats` (inverse of its precision)."""
    return np.linalg.inv(stats.precision)


def make_alignment(kind: str, src, dst):
    """``x (N, D) -> (N, D)`` moving ``src``'s first (``"mean"``) or first and second (``"coral"``)
    moments onto ``dst``'s (both :class:`EmbeddingStats`)."""
    if kind == "none":
        return lambda x: np.asarray(x, np.float64)
    if kind == "mean":
        return lambda x: np.asarray(x, np.float64) - src.mean + dst.mean
    if kind == "coral":
        A = _sqrtm_sym(covariance(src), inverse=True) @ _sqrtm_sym(covariance(dst))
        return lambda x: (np.asarray(x, np.float64) - src.mean) @ A + dst.mean
    raise ValueError(f"unknown alignment {kind!r}")


KINDS = ("none", "mean", "coral")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--halves", required=True)
    ap.add_argument("--renders", default=None, help="realism_ablation.py root (its recipe.npz)")
    ap.add_argument("--out", default=str(HERE / "results" / "realism_alignment.json"))
    a = ap.parse_args(argv)
    from bench_fidelity import cache_root
    from regressor_realism import real_embeddings

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import (fit_embedding_stats, frechet_distance, mean_interval,
                                                     nearest_distances, paired_difference, score_heads)
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.regressor.data import load_eval_data
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.weights import load_regressor

    t0 = time.perf_counter()
    model = load_head_model("low")
    reg, guard = load_regressor(), load_guard()
    train = guard.stats
    real, names = real_embeddings(Path(a.real).expanduser())
    halves = json.loads(Path(a.halves).read_text())
    pos = {n: i for i, n in enumerate(names)}
    qa = real[[pos[n] for n in halves["A"]]]
    qb = real[[pos[n] for n in halves["B"]]]
    qa, qb = qa[np.isfinite(qa[:, 0])], qb[np.isfinite(qb[:, 0])]
    src_real = fit_embedding_stats(qa)
    renders = None
    if a.renders:
        with np.load(Path(a.renders).expanduser() / "recipe.npz") as z:
            renders = z["emb_recipe"].astype(np.float64)
        renders = renders[np.isfinite(renders[:, 0])]
    tmpl = np.asarray(model.vertices, np.float64)
    out = {"train_stats": {"n": train.n, "shrinkage": train.shrinkage}, "guard": {"m_ref": guard.m_ref,
           "power": str(guard.power), "m_max": guard.m_max},
           "real_src": {"half": "A", "n": int(qa.shape[0]), "shrinkage": src_real.shrinkage},
           "real_B": {"n": int(qb.shape[0])}, "set_b": {}}
    p0 = np.asarray(reg(qb), np.float64)
    for k in KINDS:
        f = make_alignment(k, src_real, train)
        x = f(qb)
        d = guard.distance(x)
        row = {"mahalanobis": mean_interval(d).as_dict(),
               "mahalanobis_over_m_ref_median": float(np.median(d) / guard.m_ref),
               "guard_factor_mean": float(np.mean(guard.factor(x))),
               "guard_factor_positive": float(np.mean(guard.factor(x) > 0))}
        p = np.asarray(reg(x), np.float64)
        row["prediction_change_rms_mm"] = float(np.mean(np.sqrt(((p - p0) ** 2).sum(-1).mean(-1))))
        row["prediction_deviation_from_template_rms_mm"] = float(np.mean(np.sqrt(((p - tmpl) ** 2).sum(-1).mean(-1))))
        if renders is not None:
            row["frechet_to_recipe_renders"] = float(frechet_distance(renders, x))
            row["nearest_recipe_render"] = mean_interval(nearest_distances(x, renders)).as_dict()
        out["real_B"][k] = row
        print("real B", k, json.dumps(row), flush=True)

    root = cache_root()
    data, _ = load_eval_data(root / "eval_ood_100", allow_expressions=True)
    ok = data.valid()
    gt, emb = data.vertices[ok], data.embeddings[ok].astype(np.float64)
    tune, _ = load_eval_data(root / "tune_ood", allow_expressions=True)
    src_tune = fit_embedding_stats(tune.embeddings[tune.valid()])
    out["set_b"]["n"] = int(ok.sum())
    out["set_b"]["tune_src"] = {"set": "tune_ood (seed 3001, the guard's calibration set)", "n": src_tune.n}
    template = np.repeat(tmpl[None].astype(np.float32), int(ok.sum()), 0)
    base = {}
    s_t = score_heads(model, gt, template, radii=(95.0,)).armse_mm[:, 0]
    out["set_b"]["template"] = mean_interval(s_t).as_dict()
    for src_name, src in (("photo_A", src_real), ("tune_ood", src_tune)):
        for k in KINDS:
            if k == "none" and src_name != "photo_A":
                continue
            x = make_alignment(k, src, train)(emb)
            pred = np.asarray(reg(x), np.float32)
            for mode, heads in (("raw", pred), ("guarded", guard.apply(tmpl, pred, x))):
                s = score_heads(model, gt, heads, radii=(95.0,)).armse_mm[:, 0]
                key = f"{mode}/{k}" if k == "none" else f"{mode}/{k}@{src_name}"
                if k == "none":
                    base[mode] = s
                row = {"armse_95": mean_interval(s).as_dict(), "diff_template": paired_difference(s, s_t).as_dict()}
                if k != "none":
                    row["diff_unaligned"] = paired_difference(s, base[mode]).as_dict()
                    row["guard_factor_mean"] = float(np.mean(guard.factor(x)))
                out["set_b"][key] = row
                print("set b", key, json.dumps(row), flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(Path(a.out), json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
