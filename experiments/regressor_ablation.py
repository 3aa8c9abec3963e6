"""Shape regressor: held-out table (mean head / landmark fit / regressor / regressor + fit) and the
population ablation of the paper's Fig. 6 (No-Aug, C-PCA, DR), on one held-out synthetic test set.

Usage::

    python experiments/regressor_ablation.py --test DIR --train dr=DIR [cpca=DIR noaug=DIR] \\
        --out experiments/results/regressor [--epochs 60] [--limit N] [--ship dr]

For every ``NAME=DIR`` the front-end cache of DIR is completed (``digitaltwin regressor embed``),
a decoder is trained with the same settings and seed (checkpoints in ``OUT/train_NAME``, resumable)
and its weights written to ``OUT/regressor_NAME``.  The test set is evaluated with the mean head,
the landmark identity fit, each regressor and (for every regressor) regressor + non-rigid fit.
Writes ``OUT/armse.json``, ``OUT/armse.md``, ``OUT/armse_vs_d.png`` (main methods) and
``OUT/ablation_vs_d.png`` (one curve per population).  ``--ship NAME`` copies that regressor, with
its held-out numbers and the default-shape-source decision, to ``digitaltwin_jax/assets/regressor``.

Results: the folder ``experiments/results/regressor/`` (the first regressor's held-out table and
curves).  The Fig. 6 table on the docs page Shape regressor comes from ``regressor_compare.py
--ablation`` (``experiments/results/regressor_ablation_fig6.json``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitaltwin_jax import load_head_model  # noqa: E402
from digitaltwin_jax.evaluation import plot_armse_curves  # noqa: E402
from digitaltwin_jax.io.atomic import atomic_write_text  # noqa: E402
from digitaltwin_jax.regressor.cli import default_decision  # noqa: E402
from digitaltwin_jax.regressor.data import (  # noqa: E402
    concat_datasets,
    frontend_cache,
    load_eval_data,
    load_synth_dataset,
    split_by_subject,
)
from digitaltwin_jax.regressor.decoder import DecoderConfig  # noqa: E402
from digitaltwin_jax.regressor.evaluate import RADII, armse_table, markdown_table, predict, summarise  # noqa: E402
from digitaltwin_jax.regressor.train import TrainConfig, evaluate_loss, train  # noqa: E402
from digitaltwin_jax.regressor.weights import METRICS, load_regressor, save_regressor, shipped_regressor_dir  # noqa: E402

LABELS = {"mean": "(a) mean head", "landmark_fit": "(b) identity fit from landmarks"}


def train_one(name, roots, out, model, epochs, seed, limit, val_fraction):
    parts, infos = [], []
    for k, r in enumerate(roots):
        frontend_cache(r, limit=limit)
        ds, info = load_synth_dataset(r, limit=limit, tag=k)
        parts.append(ds)
        infos.append(info)
    data = concat_datasets(parts)
    tr, va = split_by_subject(data, val_fraction, seed=seed)
    dcfg = DecoderConfig(embedding_dim=data.embedding_dim, num_vertices=data.num_vertices)
    tcfg = TrainConfig(epochs=epochs, seed=seed)
    record = {"encoder": "dlib_resnet_v1", "resolution": "low", "datasets": infos, "population": name,
              "split": {"val_fraction": val_fraction, "seed": seed}}
    t0 = time.perf_counter()
    res = train(tr, va, model.face_weights, dcfg, tcfg, out_dir=out / f"train_{name}", record=record)
    secs = time.perf_counter() - t0
    h = res.history
    metrics = {
        "num_train": len(tr), "num_val": len(va), "epochs": epochs, "best_epoch": res.best_epoch, "kept": "best",
        "pca_explained_variance": res.pca_explained,
        "train_loss_init": h["train_loss"][0], "val_loss_init": h["val_loss"][0],
        "train_loss_final": h["train_loss"][-1], "val_loss_final": h["val_loss"][-1],
        "val_loss_best": float(np.nanmin(h["val_loss"])),
        "val_loss_kept": evaluate_loss(dcfg, res.best_variables, va, model.face_weights),
        "train_seconds_this_run": secs,
        "seconds_per_epoch": float(np.mean(h["seconds"][1:])) if len(h["seconds"]) > 1 else None,
    }
    record.update({"train": tcfg.to_dict(), "num_train": len(tr), "num_val": len(va)})
    folder = save_regressor(out / f"regressor_{name}", dcfg, res.best_variables, record, metrics)
    shutil.copyfile(out / f"train_{name}" / "curves.png", out / f"curves_{name}.png")
    return folder, metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", required=True)
    ap.add_argument("--train", nargs="+", required=True, help="NAME=DIR[,DIR...] (dr, cpca, noaug)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "regressor"))
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="training images per set (index < limit)")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--fit-all", action="store_true", help="regressor + fit for every population (default: main only)")
    ap.add_argument("--main", default="dr", help="population of the main regressor")
    ap.add_argument("--ship", default=None, help="copy this population's regressor to the package assets")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_head_model("low")
    regs, train_metrics = {}, {}
    for spec in args.train:
        name, dirs = spec.split("=", 1)
        folder, m = train_one(name, dirs.split(","), out, model, args.epochs, args.seed, args.limit, args.val_fraction)
        regs[name] = load_regressor(folder)
        train_metrics[name] = m
        print(name, json.dumps(m), flush=True)

    frontend_cache(args.test, limit=args.test_limit)
    data, info = load_eval_data(args.test, limit=args.test_limit)
    main_name = args.main if args.main in regs else next(iter(regs))
    preds = predict(model, data, regs[main_name], methods=("mean", "landmark_fit", "regressor", "regressor+fit"))
    preds = {"mean": preds["mean"], "landmark_fit": preds["landmark_fit"],
             f"regressor_{main_name}": preds["regressor"], f"regressor_{main_name}+fit": preds["regressor+fit"]}
    for name, reg in regs.items():
        if name == main_name:
            continue
        methods = ("regressor", "regressor+fit") if args.fit_all else ("regressor",)
        p = predict(model, data, reg, methods=methods, progress=False)
        preds[f"regressor_{name}"] = p["regressor"]
        if args.fit_all:
            preds[f"regressor_{name}+fit"] = p["regressor+fit"]
    table = armse_table(model, data.vertices, preds, RADII)
    summary = summarise(table, RADII)
    labels = dict(LABELS)
    for name in regs:
        labels[f"regressor_{name}"] = f"regressor ({name})"
        labels[f"regressor_{name}+fit"] = f"regressor ({name}) + non-rigid fit"
    md = markdown_table(summary, labels)
    result = {"test": info, "num_items": len(data), "num_with_face": int(data.valid().sum()),
              "train": train_metrics, "summary": summary, "per_item": {k: v.tolist() for k, v in table.items()},
              "sample_ids": data.sample_ids.tolist(), "epochs": args.epochs, "seed": args.seed}
    key = {"mean": "mean", "landmark_fit": "landmark_fit", "regressor": f"regressor_{main_name}",
           "regressor+fit": f"regressor_{main_name}+fit"}
    decision = default_decision({k: summary[v] for k, v in key.items()})
    result["decision"] = decision
    atomic_write_text(out / "armse.json", json.dumps(result, indent=1))
    atomic_write_text(out / "armse.md", md + "\n")
    main_keys = ["mean", "landmark_fit", f"regressor_{main_name}", f"regressor_{main_name}+fit"]
    plot_armse_curves(out / "armse_vs_d.png", RADII, {labels[k]: summary[k]["mean"] for k in main_keys},
                      errors={labels[k]: summary[k]["ci95"] for k in main_keys},
                      title=f"held-out synthetic heads (n = {summary['mean']['n']})")
    abl = [k for k in summary if k.startswith("regressor_") and not k.endswith("+fit")]
    if len(abl) > 1:
        plot_armse_curves(out / "ablation_vs_d.png", RADII, {labels[k]: summary[k]["mean"] for k in abl},
                          errors={labels[k]: summary[k]["ci95"] for k in abl},
                          title="training population (Fig. 6 ablation)")
    print(md)
    print(json.dumps(decision))
    if args.ship:
        src = out / f"regressor_{args.ship}"
        dst = shipped_regressor_dir()
        dst.mkdir(parents=True, exist_ok=True)
        for f in ("decoder.msgpack", "config.json"):
            shutil.copyfile(src / f, dst / f)
        metrics = dict(json.loads((src / METRICS).read_text()))
        sel = {k: summary[v] for k, v in key.items()}
        metrics["heldout"] = {"test": info, "summary": sel, "num_items": len(data)}
        metrics.update(decision)
        atomic_write_text(dst / METRICS, json.dumps(metrics, indent=2, sort_keys=True))
        print(f"shipped {src} -> {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
