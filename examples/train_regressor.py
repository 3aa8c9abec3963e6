"""Train a small shape regressor (paper section 3.3) from a few hundred synthetic renders.

The shipped regressor (``digitaltwin regressor build``) is trained on 10,000 renders; this script
walks through the same steps at a size that runs in minutes on a laptop:

1. render synthetic faces with known heads (``synth.dataset.generate``: DR population, paper §3.2);
2. run the front end on them and cache the identity embeddings (``regressor.data.frontend_cache``);
3. split by subject and train the 128-200-3V decoder from its PCA initialisation
   (``regressor.train.train``);
4. score the held-out heads with the paper's ARMSE protocol against the template head
   (``evaluation.fidelity.score_heads``).

Usage::

    python examples/train_regressor.py --count 300 --epochs 200 --work /tmp/small_regressor

(``--count 16 --epochs 3 --sampler gaussian`` is what the test suite runs: too few renders to beat the
template, enough to check every step.)
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300, help="synthetic renders (a few hundred)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=256, help="render side in pixels")
    ap.add_argument("--work", default=None, help="folder for the renders (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--sampler", default="dr", choices=("dr", "cpca", "noaug", "gaussian"),
                    help="head population: dr = the paper's (its set-up compiles for ~30 s); gaussian = "
                         "identity coefficients N(0, 1), no set-up")
    args = ap.parse_args(argv)

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.regressor.data import frontend_cache, load_synth_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import decode
    from digitaltwin_jax.regressor.train import TrainConfig, train
    from digitaltwin_jax.synth.dataset import DatasetConfig, generate
    from digitaltwin_jax.synth.scene import SceneConfig

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="small_regressor_"))
    root = work / "renders"

    # 1. Renders with ground truth.  Rerunning the script resumes: finished shards are kept.
    config = DatasetConfig(count=args.count, seed=args.seed, shard_size=min(64, args.count),
                           sampler=args.sampler, bank_size=8, texture_size=256,
                           scene=SceneConfig(image_size=args.image_size))
    generate(root, config, workers=1, progress=False, contact_sheet_path=None)

    # 2. The front end (dlib detection + 128-d embedding) on every render, cached next to the shards.
    frontend_cache(root, progress=False)
    data, info = load_synth_dataset(root)          # renders without a detected face are left out
    print(f"{len(data)} of {args.count} renders have a face")

    # 3. Hold out a fifth of the subjects, train on the rest.
    model = load_head_model("low")
    train_set, val_set = split_by_subject(data, 0.2, seed=0)
    result = train(train_set, val_set, model.face_weights,
                   config=TrainConfig(epochs=args.epochs, batch_size=min(64, len(train_set)), seed=0),
                   progress=False)
    history = result.history
    print(f"train loss {history['train_loss'][0]:.2f} -> {history['train_loss'][-1]:.2f}; "
          f"best validation epoch {result.best_epoch}")

    # 4. ARMSE (mm, d = 95 mm around the nose tip) of the held-out heads: regressor vs template.
    predicted = np.asarray(decode(result.decoder_config, result.best_variables, val_set.embeddings))
    template = np.broadcast_to(np.asarray(model.vertices), val_set.vertices.shape)
    ours = score_heads(model, val_set.vertices, predicted, radii=(95.0,)).armse_mm[:, 0]
    base = score_heads(model, val_set.vertices, template, radii=(95.0,)).armse_mm[:, 0]
    print(f"held-out heads: {len(val_set)}; ARMSE d=95: regressor {np.nanmean(ours):.2f} mm, "
          f"template {np.nanmean(base):.2f} mm")
    return {"faces": len(data), "train": len(train_set), "val": len(val_set), "history": history,
            "armse_regressor": ours, "armse_template": base, "predicted": predicted, "val_set": val_set,
            "model": model}


if __name__ == "__main__":
    main()
