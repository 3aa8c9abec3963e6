"""``digitaltwin regressor {embed,train,evaluate}``: the shape regressor's command line (section 3.3).

* ``embed DATA``: compute (resumably) and cache the front end's identity embeddings and 68 landmarks
  of a synthetic data set (``DATA/frontend_cache.npz``).
* ``train DATA [DATA ...] --out DIR``: train a decoder on the cached embeddings (checkpoints, curves
  and a resumable state in ``--work``), then write the regressor folder (weights, config, metrics).
* ``build --root CACHE --out DIR``: rebuild a regressor from nothing (render + embed the training set
  of :func:`digitaltwin_jax.regressor.recipe.training_data_config`, train, calibrate the guard,
  write weights, provenance and metrics); rerunning the same command resumes every step.
* ``evaluate TEST --regressor DIR``: ARMSE of the mean head, the landmark identity fit, the regressor
  and regressor + non-rigid fit on a held-out synthetic set; writes ``armse.json``, ``armse.md`` and
  ``armse_vs_d.png`` to ``--out``; ``--update-metrics`` records the result (and the default-shape-
  source decision) in the regressor's ``metrics.json``.

Argument parsing and printing only; the work is in the sibling modules.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``digitaltwin regressor`` (``embed``, ``train``, ``build``, ...)."""
    ap = argparse.ArgumentParser(prog="digitaltwin regressor", description="Train / evaluate the shape regressor.")
    sub = ap.add_subparsers(dest="command", required=True)

    em = sub.add_parser("embed", help="cache identity embeddings + landmarks of a synthetic data set")
    em.add_argument("data", nargs="+", help="synthetic data set folder(s)")
    em.add_argument("--limit", type=int, default=None, help="only the first N samples of each set")
    em.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|ADDRESS",
                    help="run the front end on Ray: 'local' or a cluster address (HOST:6379 of `ray start "
                         "--head`; needs the 'distributed' extra; the shards on a shared file system)")
    em.add_argument("--workers", type=int, default=None, help="with --ray: Ray workers (default: one per CPU)")

    tr = sub.add_parser("train", help="train a decoder")
    tr.add_argument("data", nargs="+", help="synthetic data set folder(s) (embeddings cached inside)")
    tr.add_argument("--out", required=True, help="regressor folder to write (weights, config.json, metrics.json)")
    tr.add_argument("--work", default=None, help="checkpoint / curves folder (default OUT/train)")
    tr.add_argument("--epochs", type=int, default=500)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--val-fraction", type=float, default=0.1)
    tr.add_argument("--limit", type=int, default=None, help="only the first N samples of each set")
    tr.add_argument("--activation", default="elu")
    tr.add_argument("--pca-scale", default="std", choices=("std", "unit"))
    tr.add_argument("--no-resume", action="store_true")
    tr.add_argument("--keep", choices=("best", "final"), default="best", help="weights to write: best validation or last epoch")
    tr.add_argument("--multihost", nargs="?", const="auto", default=None, metavar="COORDINATOR",
                    help="train on several hosts (jax.distributed.initialize): 'auto' detects SLURM / MPI / "
                         "Kubernetes / TPU, or give process 0's HOST:PORT with --num-processes and "
                         "--process-id; every host loads the data; --work must be on a shared file "
                         "system; process 0 writes the weights")
    tr.add_argument("--num-processes", type=int, default=None)
    tr.add_argument("--process-id", type=int, default=None)

    bd = sub.add_parser("build", help="rebuild the shipped regressor from scratch (synth, embed, train, guard)")
    bd.add_argument("--root", required=True, help="cache folder for the renders and checkpoints (not the repository)")
    bd.add_argument("--out", required=True, help="regressor folder to write (e.g. digitaltwin_jax/assets/regressor)")
    bd.add_argument("--count", type=int, default=10000, help="training renders (default 10000, the paper's)")
    bd.add_argument("--seed", type=int, default=7001, help="training-set seed (default 7001)")
    bd.add_argument("--epochs", type=int, default=500)
    bd.add_argument("--train-seed", type=int, default=0)
    bd.add_argument("--workers", type=int, default=2)
    bd.add_argument("--limit", type=int, default=None,
                    help="train on the first N renders already on disk (no rendering)")

    ev = sub.add_parser("evaluate", help="held-out ARMSE table and curve")
    ev.add_argument("data", help="held-out synthetic data set folder")
    ev.add_argument("--regressor", default=None, help="regressor folder (default: the shipped one)")
    ev.add_argument("--out", required=True, help="folder for armse.json / armse.md / armse_vs_d.png")
    ev.add_argument("--methods", default=",".join(("mean", "landmark_fit", "regressor", "regressor+fit")))
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--update-metrics", action="store_true", help="record the result in the regressor's metrics.json")
    return ap


def _cmd_embed(args) -> int:
    from digitaltwin_jax.regressor.data import frontend_cache

    for root in args.data:
        try:
            if args.ray is not None:
                from digitaltwin_jax.regressor.ray_embed import embed_on_ray

                n, found = embed_on_ray(root, address=args.ray, workers=args.workers, limit=args.limit)
            else:
                n, found = frontend_cache(root, limit=args.limit)
        except (ImportError, RuntimeError, ValueError, FileNotFoundError) as e:
            print(f"regressor embed: error: {e}", file=sys.stderr)
            return 1
        print(f"{root}: {found}/{n} images with a face")
    return 0


def _cmd_train(args) -> int:
    import numpy as np

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.regressor.data import concat_datasets, load_synth_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.train import TrainConfig, evaluate_loss, train
    from digitaltwin_jax.regressor.weights import save_regressor

    writer = True  # the process that writes checkpoints and weights
    if args.multihost is not None:
        from digitaltwin_jax.regressor.parallel import initialize_multihost

        index, count = initialize_multihost(None if args.multihost == "auto" else args.multihost,
                                            args.num_processes, args.process_id)
        writer = index == 0
        print(f"process {index} of {count}", file=sys.stderr)
    parts, infos = [], []
    for k, root in enumerate(args.data):
        ds, info = load_synth_dataset(root, limit=args.limit, tag=k)
        parts.append(ds)
        infos.append(info)
    data = concat_datasets(parts)
    model = load_head_model("low")
    if data.num_vertices != model.num_vertices:
        print(f"error: data has {data.num_vertices} vertices, the low model {model.num_vertices}", file=sys.stderr)
        return 2
    tr, va = split_by_subject(data, args.val_fraction, seed=args.seed)
    dcfg = DecoderConfig(embedding_dim=data.embedding_dim, num_vertices=data.num_vertices,
                         activation=args.activation, pca_scale=args.pca_scale)
    tcfg = TrainConfig(learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "train"
    record = {"encoder": "dlib_resnet_v1", "resolution": "low", "datasets": infos,
              "split": {"val_fraction": args.val_fraction, "seed": args.seed}}
    t0 = time.perf_counter()
    # several hosts: --work on a shared file system; every process resumes from the same checkpoint
    # and writes the same one (atomic renames of identical bytes), process 0 writes the weights
    res = train(tr, va, model.face_weights, dcfg, tcfg, out_dir=work, resume=not args.no_resume,
                record=record, progress=writer)
    secs = time.perf_counter() - t0
    variables = res.best_variables if args.keep == "best" else res.variables
    h = res.history
    metrics = {
        "num_train": len(tr), "num_val": len(va), "epochs": args.epochs, "best_epoch": res.best_epoch,
        "kept": args.keep, "pca_explained_variance": res.pca_explained,
        "train_loss_init": h["train_loss"][0], "val_loss_init": h["val_loss"][0],
        "train_loss_final": h["train_loss"][-1], "val_loss_final": h["val_loss"][-1],
        "val_loss_best": float(np.nanmin(h["val_loss"])),
        "val_loss_kept": evaluate_loss(dcfg, variables, va, model.face_weights),
        "train_seconds_this_run": secs, "seconds_per_epoch": float(np.mean(h["seconds"][1:])) if len(h["seconds"]) > 1 else None,
    }
    record.update({"train": tcfg.to_dict(), "num_train": len(tr), "num_val": len(va)})
    if writer:
        save_regressor(out, dcfg, variables, record, metrics)
        print(json.dumps(metrics, indent=2))
    return 0


def _cmd_build(args) -> int:
    from digitaltwin_jax.regressor.recipe import build

    try:
        metrics = build(args.root, args.out, count=args.count, seed=args.seed, epochs=args.epochs,
                        train_seed=args.train_seed, workers=args.workers, limit=args.limit,
                        log=None)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"regressor build: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_evaluate(args) -> int:
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation import plot_armse_curves
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.regressor.data import load_eval_data
    from digitaltwin_jax.regressor.evaluate import RADII, armse_table, markdown_table, predict, summarise
    from digitaltwin_jax.regressor.weights import METRICS, load_regressor, shipped_regressor_dir

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    reg = load_regressor(args.regressor)
    model = load_head_model(reg.resolution)
    data, info = load_eval_data(args.data, limit=args.limit)
    preds = predict(model, data, reg, methods=methods)
    table = armse_table(model, data.vertices, preds, RADII)
    summary = summarise(table, RADII)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"dataset": info, "num_items": len(data), "num_with_face": int(data.valid().sum()),
              "summary": summary, "per_item": {k: v.tolist() for k, v in table.items()},
              "sample_ids": data.sample_ids.tolist()}
    atomic_write_text(out / "armse.json", json.dumps(result, indent=1))
    md = markdown_table(summary)
    atomic_write_text(out / "armse.md", md + "\n")
    plot_armse_curves(out / "armse_vs_d.png", RADII, {k: v["mean"] for k, v in summary.items()},
                      errors={k: v["ci95"] for k, v in summary.items()}, title="held-out synthetic heads")
    print(md)
    if args.update_metrics:
        folder = Path(args.regressor) if args.regressor else shipped_regressor_dir()
        metrics = dict(reg.metrics)
        metrics["heldout"] = {"dataset": info, "summary": summary}
        decision = default_decision(summary)
        metrics.update(decision)
        atomic_write_text(folder / METRICS, json.dumps(metrics, indent=2, sort_keys=True))
        print(json.dumps(decision, indent=2))
    return 0


def default_decision(summary: dict) -> dict:
    """``{"use_as_default": bool, "default_reason": str}``: whether the regressor (alone or + fit) beat
    the landmark identity fit on *this* held-out synthetic set (ARMSE averaged over the radii).

    A record only: renders of the training prior cannot show the harm on real photos, so the avatar
    command's default is decided by ``benchmarks/bench_fidelity.py`` instead
    (:data:`digitaltwin_jax.pipeline.AUTO_SHAPE_SOURCE`)."""
    import numpy as np

    if "landmark_fit" not in summary:
        return {"use_as_default": False, "default_reason": "no landmark_fit baseline evaluated"}
    base = float(np.mean(summary["landmark_fit"]["mean"]))
    cands = {m: float(np.mean(summary[m]["mean"])) for m in ("regressor", "regressor+fit") if m in summary}
    if not cands:
        return {"use_as_default": False, "default_reason": "no regressor method evaluated"}
    best = min(cands, key=cands.get)
    use = cands[best] < base
    return {"use_as_default": bool(use),
            "default_reason": f"mean ARMSE over d: {best} {cands[best]:.3f} mm vs landmark_fit {base:.3f} mm"}


def main(argv=None) -> int:
    """Run ``digitaltwin regressor`` on ``argv`` and return its exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return {"embed": _cmd_embed, "train": _cmd_train, "build": _cmd_build,
            "evaluate": _cmd_evaluate}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
