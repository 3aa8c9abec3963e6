"""Render (resumably) and embed the regressor's training set and the Fig. 6 ablation sets.

    python experiments/regressor_train_data.py ROOT --sampler dr --count 10000 --seed 7001

Rerun the same command to resume.  See :mod:`digitaltwin_jax.regressor.recipe`.

Writes no results file: it renders and embeds training sets (shards and the front-end cache in
``ROOT``) for ``digitaltwin regressor train`` and ``experiments/regressor_ablation.py``.
"""
import argparse

from digitaltwin_jax.regressor.recipe import synthesize_and_embed, training_data_config

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--sampler", default="dr")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards-per-step", type=int, default=4)
    ap.add_argument("--max-shards", type=int, default=None)
    a = ap.parse_args()
    cfg = training_data_config(a.count, a.seed, sampler=a.sampler)
    print(synthesize_and_embed(a.root, cfg, workers=a.workers, shards_per_step=a.shards_per_step,
                               max_shards=a.max_shards, progress=False))
