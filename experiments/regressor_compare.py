"""Compare regressors on the fidelity benchmark's sets (a) and (b), and item 4's landmark input.

    python experiments/regressor_compare.py --train DATA --regressor NEW [--regressor-name new]
        [--landmarks] [--ablation NAME=DIR ...] [--epochs 500] [--out FILE]

* ``--regressor DIR`` (repeatable, ``NAME=DIR``): regressor folders (``digitaltwin regressor build``
  or ``train``); the shipped one is always included as ``shipped``.
* ``--landmarks``: trains, on exactly the training pairs and split of ``--train`` (same seed, epochs,
  optimiser), a decoder whose input is the embedding followed by the 136 similarity-normalised
  landmark coordinates (:mod:`digitaltwin_jax.regressor.features`), and scores it next to the
  embedding-only decoder trained by ``build`` on the same data (``--paired-with NAME``).

Every method's heads are scored by :func:`~digitaltwin_jax.evaluation.fidelity.score_heads` (the
benchmark's ARMSE protocol, d = 80 / 95 / 110 mm) on the cached sets (a) ``eval_in_100`` and (b)
``eval_ood_100`` (``benchmarks/bench_fidelity.py`` renders them); rows give the mean with a t
interval and paired differences to the template and between named pairs.  Raw predictions only
(no fit, no guard): the guard is calibrated separately.

Results files: ``experiments/results/regressor_v3_compare.json`` (v3 against v2),
``experiments/results/regressor_v2_compare.json`` (v2 against v1) and, with ``--landmarks``,
``experiments/results/regressor_landmark_input.json``, with ``--ablation``
``experiments/results/regressor_ablation_fig6.json`` (docs: Shape regressor).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RADII = (80.0, 95.0, 110.0)


def _train_landmark_decoder(train_root, limit, epochs, work, seed=0, val_fraction=0.1):
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.regressor.data import _cached_rows, load_synth_dataset, make_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.features import reference_landmarks, with_landmarks
    from digitaltwin_jax.regressor.train import TrainConfig, train

    ds, _ = load_synth_dataset(train_root, limit=limit)
    idx = np.array([int(s.rsplit("/", 1)[1]) for s in ds.sample_ids])
    _, lms = _cached_rows(Path(train_root), idx)
    tr, va = split_by_subject(ds, val_fraction, seed=seed)
    pos = {s: i for i, s in enumerate(ds.sample_ids)}
    lm_tr = lms[[pos[s] for s in tr.sample_ids]]
    lm_va = lms[[pos[s] for s in va.sample_ids]]
    ref = reference_landmarks(lm_tr)

    def aug(part, lm):
        return make_dataset(with_landmarks(part.embeddings, lm, ref), part.vertices, part.subject_ids, part.sample_ids)

    tr2, va2 = aug(tr, lm_tr), aug(va, lm_va)
    model = load_head_model("low")
    dcfg = DecoderConfig(embedding_dim=tr2.embedding_dim, num_vertices=tr2.num_vertices)
    res = train(tr2, va2, model.face_weights, dcfg, TrainConfig(epochs=epochs, seed=seed), out_dir=work,
                progress=False, record={"input": "embedding + landmark geometry"})
    return dcfg, res, ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=None, help="training set folder (for --landmarks)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--regressor", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--landmarks", action="store_true")
    ap.add_argument("--paired-with", default=None, help="regressor NAME the landmark decoder is paired with")
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "digitaltwin_jax" / "landmark_decoder"))
    ap.add_argument("--sets", default="b,a")
    ap.add_argument("--out", default=str(HERE / "results" / "regressor_compare.json"))
    a = ap.parse_args(argv)

    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from bench_fidelity import cache_root

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import mean_interval, paired_difference, score_heads
    from digitaltwin_jax.regressor.data import load_eval_data
    from digitaltwin_jax.regressor.decoder import decode
    from digitaltwin_jax.regressor.features import with_landmarks
    from digitaltwin_jax.regressor.weights import load_regressor

    t0 = time.perf_counter()
    model = load_head_model("low")
    from digitaltwin_jax.regressor.guard import GUARD_FILE, load_guard
    from digitaltwin_jax.regressor.weights import shipped_regressor_dir

    regs = {"shipped": load_regressor()}
    guards = {"shipped": shipped_regressor_dir()}
    for spec in a.regressor:
        name, folder = spec.split("=", 1)
        regs[name] = load_regressor(folder)
        guards[name] = Path(folder)
    guards = {k: v for k, v in guards.items() if (Path(v) / GUARD_FILE).exists()}
    result = {"regressors": {k: {"config": r.record.get("datasets"), "metrics": r.metrics} for k, r in regs.items()},
              "sets": {}}
    lm = None
    if a.landmarks:
        dcfg, res, ref = _train_landmark_decoder(a.train, a.limit, a.epochs, a.work)
        lm = (dcfg, res.best_variables, ref)
        h = res.history
        result["landmark_decoder"] = {"best_epoch": res.best_epoch, "val_loss_best": float(np.nanmin(h["val_loss"])),
                                      "val_loss_init": h["val_loss"][0], "epochs": a.epochs}
        print("landmark decoder", json.dumps(result["landmark_decoder"]), flush=True)

    root = cache_root()
    for key in a.sets.split(","):
        folder = root / ("eval_ood_100" if key == "b" else "eval_in_100")
        data, _ = load_eval_data(folder, allow_expressions=True)
        ok = data.valid()
        gt = data.vertices[ok]
        heads = {"template": np.repeat(np.asarray(model.vertices, np.float32)[None], int(ok.sum()), 0)}
        for name, r in regs.items():
            heads[name] = np.asarray(r(data.embeddings[ok]), np.float32)
            folder = guards.get(name)
            if folder is not None:  # the regressor's own out-of-distribution guard, when it has one
                heads[name + "+guard"] = load_guard(folder).apply(model.vertices, heads[name], data.embeddings[ok])
        if lm is not None:
            x = with_landmarks(data.embeddings[ok], data.landmarks[ok], lm[2])
            heads["landmarks+embedding"] = np.asarray(decode(lm[0], lm[1], x), np.float32)
        scores = {m: score_heads(model, gt, h, radii=RADII).armse_mm for m, h in heads.items()}
        rows = {}
        for m, s in scores.items():
            row = {"n": int(np.isfinite(s[:, 1]).sum())}
            for j, dd in enumerate(RADII):
                row[f"armse_{dd:g}"] = mean_interval(s[:, j]).as_dict()
                if m != "template":
                    row[f"diff_template_{dd:g}"] = paired_difference(s[:, j], scores["template"][:, j]).as_dict()
                if m not in ("template", "shipped") and not m.startswith("shipped"):
                    row[f"diff_shipped_{dd:g}"] = paired_difference(s[:, j], scores["shipped"][:, j]).as_dict()
            rows[m] = row
        if "shipped+guard" in scores:
            for m in [m for m in scores if m.endswith("+guard") and m != "shipped+guard"]:
                rows[m]["diff_shipped_guard_95"] = paired_difference(scores[m][:, 1], scores["shipped+guard"][:, 1]).as_dict()
        if lm is not None and a.paired_with in scores:
            rows["landmarks+embedding"]["diff_paired_with"] = {
                f"{dd:g}": paired_difference(scores["landmarks+embedding"][:, j], scores[a.paired_with][:, j]).as_dict()
                for j, dd in enumerate(RADII)}
        result["sets"][key] = {"n_items": len(data), "n_with_face": int(ok.sum()), "rows": rows,
                               "per_item_95": {m: s[:, 1].tolist() for m, s in scores.items()}}
        for m, row in rows.items():
            extra = {k: v for k, v in row.items() if k.startswith("diff") and "95" in k}
            print(key, m, f"{row['armse_95']['mean']:.3f}", json.dumps(extra), flush=True)
    result["seconds"] = time.perf_counter() - t0
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
