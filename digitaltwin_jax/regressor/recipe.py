"""The shipped regressor's recipe: the data-set configuration it is trained on (paper section 3.2,
with the engine's realism ingredients) and the provenance record written beside its weights.

Training data (:func:`training_data_config`) differs from the first shipped regressor (634 neutral
renders of Gaussian-prior heads, masked eyes, procedural skin) in what makes a render look like a
photo to the face encoder:

* heads from the DR population (``sampler="dr"``, paper: r in [0.6, 1.3]);
* sphere eyeballs instead of black eye openings; the texture pipeline's skin bank;
* random expressions (real photos smile; the target stays the neutral head, recovered exactly by
  subtracting the recorded blendshape offsets, :func:`~digitaltwin_jax.regressor.data.load_synth_dataset`);
* head pose +-15 degrees (paper), fields of view 20-50 degrees;
* camera effects: blur up to 1.2 px, sensor noise up to 3 %, JPEG round trip on 80 % of the images
  at quality 40-95.

The benchmark's sets (:mod:`digitaltwin_jax.synth.evalsets`) use other seeds and other ranges (set
(b): DR r in [1, 1.6], out-of-span detail, yaw +-35 degrees, 24-135 mm lenses), so they stay
held out.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from digitaltwin_jax.synth.dataset import DatasetConfig
from digitaltwin_jax.synth.engine import RenderConfig
from digitaltwin_jax.synth.scene import PostConfig, SceneConfig

__all__ = ["training_data_config", "TRAINING_POST", "code_commit", "provenance"]

TRAINING_POST = PostConfig(blur_sigma=(0.0, 1.2), noise_sigma=(0.0, 0.03), jpeg_probability=0.8,
                           jpeg_quality=(40, 95))


def training_data_config(count: int, seed: int, *, sampler: str = "dr", image_size: int = 256,
                         shard_size: int = 64) -> DatasetConfig:
    """The regressor's training set (module docstring); ``sampler`` ``"cpca"`` / ``"noaug"`` give the
    paper's Fig. 6 ablation populations with every other ingredient unchanged."""
    scene = SceneConfig(image_size=int(image_size), expressions=True, post=TRAINING_POST)
    return DatasetConfig(count=int(count), seed=int(seed), shard_size=int(shard_size), sampler=sampler,
                         resolution="low", albedo_source="texture-bank", bank_size=64, scene=scene,
                         render=RenderConfig(eyes="eyeballs", shading="pixel"))


def code_commit(repo=None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout holding this package."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "digitaltwin_jax"], cwd=root,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(datasets: list[dict], train: dict, extra: dict | None = None) -> dict:
    """The provenance record (JSON-able): data-set configurations and seeds, training settings, the
    code commit.  ``datasets``: one dict per set with at least ``config`` (``DatasetConfig.to_json()``)."""
    rec = {"datasets": datasets, "train": train, "code": code_commit()}
    rec.update(extra or {})
    json.dumps(rec)  # fail early on anything not JSON-able
    return rec


def _print(msg: str) -> None:
    print(msg, flush=True)


def synthesize_and_embed(root, config: DatasetConfig, *, workers: int = 2, shards_per_step: int = 1,
                         max_shards: int | None = None, progress: bool = True, log=None) -> dict:
    """Render ``config`` into ``root`` and cache the front end's embeddings, ``shards_per_step``
    shards at a time (so a partial set is always rendered *and* embedded up to its last shard);
    resumable at any point.  ``max_shards`` stops after that many new shards.  Returns the last
    ``generate`` summary plus ``num_with_face``."""
    import time

    from digitaltwin_jax.regressor.data import frontend_cache
    from digitaltwin_jax.synth.dataset import generate, shard_path

    log = log or _print
    root = Path(root)
    done = 0
    summary: dict = {}
    t0 = time.perf_counter()
    while True:
        missing = sum(1 for k in range(config.num_shards) if not shard_path(root, k).exists())
        step = shards_per_step if max_shards is None else min(shards_per_step, max_shards - done)
        if missing == 0 or step <= 0:
            break
        summary = generate(root, config, workers=workers, progress=progress, max_shards=step,
                           contact_sheet_path=None)
        done += step
        n, found = frontend_cache(root, progress=progress)
        summary["num_with_face"] = int(found)
        log(f"{root}: {n} images on disk and embedded, {found} with a face, "
            f"{summary.get('images_per_second')} img/s rendering, {time.perf_counter() - t0:.0f} s this run")
    n, found = frontend_cache(root, progress=progress)
    summary["num_with_face"] = int(found)
    return summary


GUARD_FACTORS = (0.0, 0.25, 0.5, 0.75, 1.0)
TUNE_OOD_SEED = 3001  # the guard's power-calibration set (experiments/fidelity_sets.py); never reported


def calibrate_guard(model, regressor, train_embeddings, heldout_embeddings, tune_data, *,
                    record: dict | None = None):
    """The out-of-distribution guard of a freshly trained regressor
    (:mod:`digitaltwin_jax.regressor.guard`): statistics of ``train_embeddings (N, D)``, ``m_ref`` from
    ``heldout_embeddings (M, D)`` (other heads of the same distribution), ``power`` by the mean ARMSE
    (d = 95 mm) of ``template + s (prediction - template)`` on ``tune_data`` (an
    :class:`~digitaltwin_jax.regressor.evaluate.EvalData`, out-of-distribution renders that no
    reported set shares), ``m_max`` the 95th percentile of its distances."""
    import dataclasses
    import math

    import numpy as np

    from digitaltwin_jax.evaluation.fidelity import score_heads
    from digitaltwin_jax.regressor.guard import calibrate_power, make_guard

    guard = make_guard(train_embeddings, heldout_embeddings)
    ok = tune_data.valid()
    if ok.sum() < 5:
        raise ValueError(f"the guard's calibration set has {int(ok.sum())} faces; need at least 5")
    pred = np.asarray(regressor(tune_data.embeddings[ok]), np.float64)
    tmpl = np.asarray(model.vertices, np.float64)
    errs = np.full((int(ok.sum()), len(GUARD_FACTORS)), np.nan)
    for j, s in enumerate(GUARD_FACTORS):
        heads = (tmpl[None] + s * (pred - tmpl[None])).astype(np.float32)
        errs[:, j] = score_heads(model, tune_data.vertices[ok], heads, radii=(95.0,)).armse_mm[:, 0]
    dist = guard.distance(tune_data.embeddings[ok])
    power, curve = calibrate_power(dist, GUARD_FACTORS, errs, guard.m_ref)
    m_max = float(np.nanquantile(dist, 0.95))
    rec = dict(record or {})
    rec.update({
        "stats_set": {"kind": "the regressor's training embeddings", "train": int(np.shape(train_embeddings)[0]),
                      "heldout": int(np.shape(heldout_embeddings)[0])},
        "power_set": {"kind": "out_of_distribution", "seed": TUNE_OOD_SEED, "n": int(ok.sum())},
        "factors": list(GUARD_FACTORS), "mean_armse95_at_factor": [float(x) for x in np.nanmean(errs, 0)],
        "mean_armse95_at_power": curve, "tune_median_mahalanobis": float(np.nanmedian(dist)),
        "m_max_rule": "95th percentile of the power set's distances; the guard fades to the template by 1.25 m_max",
    })
    return dataclasses.replace(guard, power=power if math.isfinite(power) else math.inf, m_max=m_max, record=rec)


def build(root, out, *, count: int = 10000, seed: int = 7001, epochs: int = 500, train_seed: int = 0,
          val_fraction: float = 0.1, workers: int = 2, limit: int | None = None, log=None) -> dict:
    """Rebuild a regressor folder from nothing: render and embed the training set
    (:func:`training_data_config`) under ``root/train``, train (resumable, ``root/train_work``), write
    weights + ``config.json`` (provenance) + ``metrics.json`` to ``out``, render the guard's
    calibration set (``root/tune_ood``) and write the guard.  Every step resumes where a killed run
    stopped.  ``limit`` trains on the first ``limit`` images only (the rest may still be rendering).
    Returns the metrics."""
    import json
    import time

    import numpy as np

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.regressor.data import load_eval_data, load_synth_dataset, split_by_subject
    from digitaltwin_jax.regressor.decoder import DecoderConfig
    from digitaltwin_jax.regressor.guard import save_guard
    from digitaltwin_jax.regressor.train import TrainConfig, evaluate_loss, train
    from digitaltwin_jax.regressor.weights import METRICS, load_regressor, save_regressor
    from digitaltwin_jax.synth.evalsets import make_eval_set, out_of_distribution_config

    log = log or _print
    root, out = Path(root), Path(out)
    cfg = training_data_config(count, seed)
    if limit is None:
        synthesize_and_embed(root / "train", cfg, workers=workers, progress=False, log=log)
    data, info = load_synth_dataset(root / "train", limit=limit)
    model = load_head_model("low")
    tr, va = split_by_subject(data, val_fraction, seed=train_seed)
    dcfg = DecoderConfig(embedding_dim=data.embedding_dim, num_vertices=data.num_vertices)
    tcfg = TrainConfig(epochs=epochs, seed=train_seed)
    ds_rec = dict(info, config=cfg.to_json(), limit=limit, recipe="digitaltwin_jax.regressor.recipe.training_data_config")
    record = provenance([ds_rec], tcfg.to_dict(), {"encoder": "dlib_resnet_v1", "resolution": "low",
                                                   "split": {"val_fraction": val_fraction, "seed": train_seed},
                                                   "population": cfg.sampler})
    t0 = time.perf_counter()
    res = train(tr, va, model.face_weights, dcfg, tcfg, out_dir=root / "train_work", progress=True, record=record)
    h = res.history
    metrics = {"num_train": len(tr), "num_val": len(va), "epochs": epochs, "best_epoch": res.best_epoch,
               "kept": "best", "pca_explained_variance": res.pca_explained,
               "val_loss_init": h["val_loss"][0], "val_loss_final": h["val_loss"][-1],
               "val_loss_best": float(np.nanmin(h["val_loss"])),
               "val_loss_kept": evaluate_loss(dcfg, res.best_variables, va, model.face_weights),
               "train_loss_final": h["train_loss"][-1], "train_seconds_this_run": time.perf_counter() - t0}
    record.update({"num_train": len(tr), "num_val": len(va), "datasets": [ds_rec]})
    save_regressor(out, dcfg, res.best_variables, record, metrics)
    log(f"trained: {json.dumps(metrics)}")
    tune_root = make_eval_set(root / "tune_ood", out_of_distribution_config(60, TUNE_OOD_SEED), workers=workers,
                              progress=False)
    tune, _ = load_eval_data(tune_root, allow_expressions=True)
    reg = load_regressor(out)
    guard = calibrate_guard(model, reg, tr.embeddings, va.embeddings, tune)
    save_guard(guard, out)
    metrics["guard"] = {"m_ref": guard.m_ref, "power": str(guard.power), "m_max": guard.m_max}
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2, sort_keys=True))
    log(f"guard: {metrics['guard']}")
    return metrics
