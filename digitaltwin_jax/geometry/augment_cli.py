"""The ``augment`` command: write an augmented shape set (paper section 3.2; ablation section 4.4).

    python -m digitaltwin_jax.geometry.augment_cli --out data/augmented --num 10000 --method dr

Draws a population from the head model's identity space (k-means groups as stand-ins for the
paper's gender x ethnicity), then DR-samples (or C-PCA / No-Aug) ``--num`` shapes in shards of
``--shard-size``.  Output folder:

  manifest.json              the settings (a rerun with different settings is refused)
  population.npz             identity_coeffs (N, K), groups (N,), faces (F, 3), resolution
  shard_00000.npz ...        vertices (n, V, 3) float32 mm, group (n,), sample_index (n,), and for
                             DR members (n, m) / weights (n, m), for No-Aug subject (n,)

Shards are written atomically (temporary file + rename) and shard i is drawn with key
``fold_in(PRNGKey(seed), i)``, so an interrupted run resumes by skipping finished shards and
produces the same data as an uninterrupted one.  Exit codes: 0 done, 2 bad arguments or settings
mismatch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

METHODS = ("dr", "cpca", "noaug")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m digitaltwin_jax augment``."""
    ap = argparse.ArgumentParser(
        prog="augment", description="Write an augmented 3D head shape set (DR / C-PCA / No-Aug sampling)."
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--num", type=int, default=10000, help="number of shapes (default 10000)")
    ap.add_argument("--method", choices=METHODS, default="dr", help="dr (paper), cpca or noaug (ablation)")
    ap.add_argument("--resolution", choices=("low", "full"), default="low")
    ap.add_argument("--subjects", type=int, default=482, help="population size (paper: 482)")
    ap.add_argument("--groups", type=int, default=6, help="k-means groups (paper: 2 genders x 3 ethnicities)")
    ap.add_argument("--group-weights", type=float, nargs="*", default=None,
                    help="probability of each group (default: proportional to group sizes)")
    ap.add_argument("--identity-scale", type=float, default=1.0, help="std of population identity coefficients")
    ap.add_argument("--m", type=int, default=5, help="subjects interpolated per DR sample (paper: 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def _atomic_savez(path: Path, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None, *, model=None) -> int:
    """Run the command; ``model`` overrides the shipped head model (tests)."""
    args = build_parser().parse_args(argv)
    if args.num < 1 or args.shard_size < 1 or args.subjects < 2 or args.groups < 1 or args.m < 1:
        print("augment: --num, --shard-size, --m, --groups must be >= 1 and --subjects >= 2", file=sys.stderr)
        return 2
    import jax

    from digitaltwin_jax.geometry import sampling
    from digitaltwin_jax.model.head_model import load_head_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("num", "method", "resolution", "subjects", "groups",
                                              "group_weights", "identity_scale", "m", "seed", "shard_size")}
    settings["model_vertices"] = None
    if model is None:
        model = load_head_model(args.resolution)
    settings["model_vertices"] = int(model.vertices.shape[0])
    manifest = out / "manifest.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("settings") != settings:
            print(f"augment: {out} holds a run with other settings ({old.get('settings')}); "
                  "use another --out or delete it", file=sys.stderr)
            return 2
    else:
        _atomic_text(manifest, json.dumps({"settings": settings, "format": 1}, indent=2))

    key = jax.random.PRNGKey(args.seed)
    k_pop, k_samples = jax.random.split(key)
    t0 = time.time()
    pop = sampling.sample_population(model, k_pop, num_subjects=args.subjects, num_groups=args.groups,
                                     identity_scale=args.identity_scale)
    if not (out / "population.npz").exists():
        _atomic_savez(out / "population.npz", identity_coeffs=pop.identity_coeffs, groups=pop.groups,
                      faces=np.asarray(model.faces), resolution=np.array(args.resolution))
    num_shards = -(-args.num // args.shard_size)
    todo = [i for i in range(num_shards) if not (out / f"shard_{i:05d}.npz").exists()]
    if not todo:
        print(f"augment: all {num_shards} shards already in {out}", file=sys.stderr)
        return 0
    sampler = None
    if args.method == "dr":
        sampler = sampling.make_dr_sampler(pop, model.vertices, model.faces, m=args.m,
                                           group_weights=args.group_weights, anchor=int(model.nose_tip_index))
    from tqdm import tqdm

    done_before = args.num - sum(min(args.shard_size, args.num - i * args.shard_size) for i in todo)
    bar = tqdm(total=args.num, initial=done_before, unit="shape", disable=args.no_progress, desc=f"augment {args.method}")
    for i in todo:
        n = min(args.shard_size, args.num - i * args.shard_size)
        k = jax.random.fold_in(k_samples, i)
        if args.method == "dr":
            res = sampling.sample_dr(k, sampler, n)
        elif args.method == "cpca":
            res = sampling.sample_cpca(k, pop, n, group_weights=args.group_weights)
        else:
            res = sampling.sample_noaug(k, pop, n, group_weights=args.group_weights)
        res["sample_index"] = np.arange(i * args.shard_size, i * args.shard_size + n)
        _atomic_savez(out / f"shard_{i:05d}.npz", **res)
        bar.update(n)
    bar.close()
    print(f"augment: wrote {len(todo)} shard(s) to {out} in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
