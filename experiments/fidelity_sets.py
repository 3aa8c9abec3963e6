"""Render (or resume) the fidelity benchmark's calibration and tuning sets.

    python experiments/fidelity_sets.py [--root DIR] [--quick]

Sets (seeds are fixed here and nowhere else, so that no reported set is ever used for tuning):
  guard_stats   in-distribution renders (seed 4001, 240 images): the regressor guard's embedding
                statistics and its m_ref (held-out 95th percentile);
  tune_ood      out-of-distribution renders (seed 3001, 60 images): calibration of the guard's power,
                the expression / focal priors and the corrective-field weights;
  eval_in       set (a) of the benchmark (seed 1001), eval_ood set (b) (seed 2001): rendered by
                benchmarks/bench_fidelity.py, listed here for completeness.

Writes no results file: the rendered sets go to the cache folder (``--root``); the runs that
use them write ``experiments/results/fidelity_calibration.json`` (``calibrate_fidelity.py``) and
``experiments/results/fidelity_benchmark.json`` (``benchmarks/bench_fidelity.py``).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

SEEDS = {"eval_in": 1001, "eval_ood": 2001, "tune_ood": 3001, "guard_stats": 4001}


def default_root() -> Path:
    base = os.environ.get("DIGITALTWIN_CACHE_DIR", str(Path.home() / ".cache" / "digitaltwin_jax"))
    return Path(base) / "fidelity"


def main(argv=None):
    from digitaltwin_jax.synth.evalsets import in_distribution_config, make_eval_set, out_of_distribution_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(default_root()))
    p.add_argument("--only", choices=("guard_stats", "tune_ood"), default=None)
    a = p.parse_args(argv)
    root = Path(a.root)
    if a.only in (None, "guard_stats"):
        make_eval_set(root / "guard_stats", in_distribution_config(240, SEEDS["guard_stats"]))
    if a.only in (None, "tune_ood"):
        make_eval_set(root / "tune_ood", out_of_distribution_config(60, SEEDS["tune_ood"]))


if __name__ == "__main__":
    main()
