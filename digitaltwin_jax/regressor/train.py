"""Training loop of the shape regressor (paper section 3.3 / 4.1 implementation details).

Adam (optax) with learning rate 1e-4, beta1 = 0.5, beta2 = 0.999, batch 64, 500 epochs, on the
weighted per-vertex L1 loss (:mod:`digitaltwin_jax.regressor.loss`).

* Deterministic for a seed: parameters come from ``jax.random.key(seed)``, the epoch-``e`` shuffle
  from ``numpy.random.default_rng([seed, e])``; an epoch is one jit-compiled ``lax.scan`` over
  fixed-size batches (the ``N mod 64`` samples left over change every epoch).
* Checkpoints are plain files in ``out_dir``: ``checkpoint.msgpack`` (flax.serialization of params,
  optimiser state, best-validation params, epoch and history, written atomically every
  ``checkpoint_every`` epochs and at the end) and ``train_config.json``; a run with the same
  configuration resumes from the checkpoint and ends bit-identical to an uninterrupted run.
* ``curves.png`` (matplotlib Agg): training and validation loss per epoch.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from digitaltwin_jax.io.atomic import atomic_write_bytes, atomic_write_text
from digitaltwin_jax.regressor.data import ShapeDataset
from digitaltwin_jax.regressor.decoder import DecoderConfig, ShapeDecoder, init_decoder, pca_basis
from digitaltwin_jax.regressor.loss import weighted_l1

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate_loss", "plot_curves"]

CHECKPOINT = "checkpoint.msgpack"
CONFIG_FILE = "train_config.json"
CURVES = "curves.png"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper section 4.1 defaults).

    Attributes:
      learning_rate, beta1, beta2: Adam's (1e-4, 0.5, 0.999).
      batch_size: 64.  epochs: 500.  seed: parameter init and shuffling.
      checkpoint_every: epochs between checkpoints (the last epoch is always saved).
      eval_batch: batch size of the validation pass (memory only; does not change results).
    """

    learning_rate: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    epochs: int = 500
    seed: int = 0
    checkpoint_every: int = 10
    eval_batch: int = 1024

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 0 or self.checkpoint_every < 1:
            raise ValueError(f"invalid training config {self}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
      variables: final decoder variables ``{"params", "constants"}``.
      best_variables: variables of the epoch with the lowest validation loss (final if no validation).
      best_epoch: that epoch (1-based; 0 = the initialisation).
      history: ``{"epoch": [...], "train_loss": [...], "val_loss": [...], "seconds": [...]}`` per epoch;
        entry 0 is the initialisation (train loss evaluated on the whole training set).
      decoder_config: the architecture.  config: the optimisation settings.
      pca_explained: variance fraction explained by the PCA initialisation.
    """

    variables: dict
    best_variables: dict
    best_epoch: int
    history: dict
    decoder_config: DecoderConfig
    config: TrainConfig
    pca_explained: float


def _optimizer(cfg: TrainConfig):
    return optax.adam(cfg.learning_rate, b1=cfg.beta1, b2=cfg.beta2)


@functools.lru_cache(maxsize=16)
def _chunk_loss_fn(decoder_config: DecoderConfig):
    model = ShapeDecoder(decoder_config)

    @jax.jit
    def chunk_sum(variables, e, v, w):
        return weighted_l1(model.apply(variables, e), v, w) * e.shape[0]

    return chunk_sum


def evaluate_loss(decoder_config: DecoderConfig, variables: dict, dataset: ShapeDataset, weights, batch: int = 1024) -> float:
    """Weighted L1 loss (mm) of ``variables`` over a whole dataset (exact mean over samples)."""
    w = jnp.asarray(weights, jnp.float32)
    chunk_sum = _chunk_loss_fn(decoder_config)
    n = len(dataset)
    total = 0.0
    for s in range(0, n, batch):
        e = jnp.asarray(dataset.embeddings[s : s + batch])
        v = jnp.asarray(dataset.vertices[s : s + batch])
        total += float(chunk_sum(variables, e, v, w))
    return total / max(n, 1)


@functools.lru_cache(maxsize=16)
def _epoch_fn(decoder_config: DecoderConfig, learning_rate: float, beta1: float, beta2: float):
    model = ShapeDecoder(decoder_config)
    tx = optax.adam(learning_rate, b1=beta1, b2=beta2)

    def loss_fn(params, constants, e, v, w):
        return weighted_l1(model.apply({"params": params, "constants": constants}, e), v, w)

    grad_fn = jax.value_and_grad(loss_fn)

    @jax.jit
    def run_epoch(params, opt_state, constants, emb, verts, w, batches):
        def step(carry, idx):
            p, s = carry
            loss, g = grad_fn(p, constants, emb[idx], verts[idx], w)
            updates, s = tx.update(g, s, p)
            return (optax.apply_updates(p, updates), s), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, jnp.mean(losses)

    return run_epoch


def _training_mesh(mesh, batch: int):
    """The mesh :func:`train` uses: None (one device) or a ``"data"`` mesh (see ``train(mesh=)``)."""
    if mesh is None:
        return None
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh, got {mesh!r}")
        if jax.device_count() < 2 or batch % jax.device_count():
            return None
        from digitaltwin_jax.regressor.parallel import data_mesh

        return data_mesh()
    if batch % mesh.size:
        raise ValueError(f"the batch size {batch} must be divisible by the {mesh.size} devices of the mesh")
    return mesh


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    b = min(batch_size, n)
    steps = n // b
    return perm[: steps * b].reshape(steps, b).astype(np.int32)


def _state(variables, opt_state, best_variables, epoch, best_epoch, history):
    return {
        "variables": variables,
        "opt_state": opt_state,
        "best_variables": best_variables,
        "epoch": np.int64(epoch),
        "best_epoch": np.int64(best_epoch),
        "history": {k: np.asarray(v, np.float64) for k, v in history.items()},
    }


def _resume_key(rec: dict) -> dict:
    """What must agree for a checkpoint to be resumed (the epoch count may grow)."""
    key = {k: rec.get(k) for k in ("decoder", "train", "num_train", "num_val", "data_fingerprint")}
    key["train"] = {k: v for k, v in (key["train"] or {}).items() if k not in ("epochs", "checkpoint_every", "eval_batch")}
    return key


def _fingerprint(ds: ShapeDataset | None) -> str:
    import hashlib

    if ds is None:
        return ""
    h = hashlib.sha1()
    for a in (ds.embeddings, ds.vertices, ds.subject_ids):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _config_record(decoder_config: DecoderConfig, cfg: TrainConfig, n_train: int, n_val: int, extra: dict | None):
    rec = {"decoder": decoder_config.to_dict(), "train": cfg.to_dict(), "num_train": n_train, "num_val": n_val}
    rec.update(extra or {})
    return rec


def train(
    train_set: ShapeDataset,
    val_set: ShapeDataset | None,
    weights,
    decoder_config: DecoderConfig | None = None,
    config: TrainConfig = TrainConfig(),
    out_dir=None,
    resume: bool = True,
    progress: bool = True,
    record: dict | None = None,
    mesh="auto",
) -> TrainResult:
    """Train a decoder from a PCA initialisation of ``train_set``'s shapes.

    Args:
      train_set: training pairs (PCA, embedding statistics and gradient steps use it only).
      val_set: validation pairs (other subjects) or None.
      weights: ``(V,)`` per-vertex loss weights (``model.face_weights``).
      decoder_config: architecture; default: the paper's layers sized after the data.
      config: optimisation settings.
      out_dir: folder for checkpoint, ``train_config.json`` and ``curves.png`` (None: keep nothing).
      resume: continue from ``out_dir/checkpoint.msgpack`` when it exists (its recorded
        configuration must equal this one, else ValueError).
      progress: show a tqdm bar over epochs.
      record: extra JSON-able facts stored in ``train_config.json`` (dataset path, seed, ...).
      mesh: data parallelism (:mod:`digitaltwin_jax.regressor.parallel`): ``"auto"`` splits each
        batch over all devices (every host's, after ``jax.distributed.initialize``) when there are
        several and the batch size is divisible by their number, else trains on one device; a
        ``jax.sharding.Mesh`` with axis ``"data"`` uses that mesh; None: one device.  Several devices
        give the single-device result up to float32 summation order.

    Returns:
      A :class:`TrainResult`.
    """
    from tqdm.auto import tqdm

    if decoder_config is None:
        decoder_config = DecoderConfig(embedding_dim=train_set.embedding_dim, num_vertices=train_set.num_vertices)
    if train_set.embedding_dim != decoder_config.embedding_dim or train_set.num_vertices != decoder_config.num_vertices:
        raise ValueError(
            f"dataset (D={train_set.embedding_dim}, V={train_set.num_vertices}) does not match the decoder "
            f"(D={decoder_config.embedding_dim}, V={decoder_config.num_vertices})"
        )
    weights = np.asarray(weights, np.float32)
    if weights.shape != (train_set.num_vertices,):
        raise ValueError(f"weights must have shape ({train_set.num_vertices},), got {weights.shape}")

    pca = pca_basis(train_set.vertices, decoder_config.num_components)
    variables = init_decoder(
        jax.random.key(config.seed),
        decoder_config,
        pca,
        train_set.embeddings.mean(axis=0),
        train_set.embeddings.std(axis=0),
    )
    tx = _optimizer(config)
    opt_state = tx.init(variables["params"])
    rec = _config_record(decoder_config, config, len(train_set), 0 if val_set is None else len(val_set), record)
    rec["data_fingerprint"] = _fingerprint(train_set) + "/" + _fingerprint(val_set)

    has_val = val_set is not None and len(val_set) > 0
    history = {"epoch": [0.0], "train_loss": [], "val_loss": [], "seconds": [0.0]}
    history["train_loss"].append(evaluate_loss(decoder_config, variables, train_set, weights, config.eval_batch))
    history["val_loss"].append(
        evaluate_loss(decoder_config, variables, val_set, weights, config.eval_batch) if has_val else float("nan")
    )
    best_variables, best_epoch, start = variables, 0, 0

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        ckpt = out / CHECKPOINT
        if resume and ckpt.exists():
            saved = json.loads((out / CONFIG_FILE).read_text())
            same, now = _resume_key(saved), _resume_key(rec)
            if same != now:
                raise ValueError(f"checkpoint in {out} was made with another configuration: {same} != {now}")
            template = _state(variables, opt_state, variables, 0, 0, {k: [] for k in history})
            st = flax.serialization.msgpack_restore(ckpt.read_bytes())
            history = {k: [float(x) for x in np.asarray(v)] for k, v in st.pop("history").items()}
            template.pop("history")
            st = flax.serialization.from_state_dict(template, st)
            variables, opt_state, best_variables = st["variables"], st["opt_state"], st["best_variables"]
            start, best_epoch = int(st["epoch"]), int(st["best_epoch"])
        atomic_write_text(out / CONFIG_FILE, json.dumps(rec, indent=2))

    def save(epoch):
        if out is None:
            return
        st = _state(variables, local(opt_state), best_variables, epoch, best_epoch, history)
        atomic_write_bytes(out / CHECKPOINT, flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(st)))
        plot_curves(history, out / CURVES)

    run_epoch = _epoch_fn(decoder_config, config.learning_rate, config.beta1, config.beta2)
    mesh = _training_mesh(mesh, min(config.batch_size, len(train_set)))
    constants = variables["constants"]
    params = variables["params"]
    local = lambda tree: tree  # noqa: E731 - one device: arrays are already local
    if mesh is None:
        w_dev = jnp.asarray(weights)
        emb = jnp.asarray(train_set.embeddings)
        verts = jnp.asarray(train_set.vertices)
    else:  # data parallel: everything replicated, each step's batch split over the devices
        from digitaltwin_jax.regressor.parallel import local_replica as local
        from digitaltwin_jax.regressor.parallel import replicate

        w_dev, emb, verts, constants, params, opt_state = replicate(
            mesh, (weights, train_set.embeddings, train_set.vertices, constants, params, opt_state))
    bar = tqdm(range(start + 1, config.epochs + 1), desc="train", disable=not progress, initial=start, total=config.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        batches = _batches(len(train_set), config.batch_size, config.seed, epoch)
        if mesh is None:
            batches = jnp.asarray(batches)
        else:
            from digitaltwin_jax.regressor.parallel import shard_batches

            batches = shard_batches(mesh, batches)
        params, opt_state, tl = run_epoch(params, opt_state, constants, emb, verts, w_dev, batches)
        variables = local({"params": params, "constants": constants})
        tl = local(tl)
        vl = evaluate_loss(decoder_config, variables, val_set, weights, config.eval_batch) if has_val else float("nan")
        history["epoch"].append(float(epoch))
        history["train_loss"].append(float(tl))
        history["val_loss"].append(vl)
        history["seconds"].append(time.perf_counter() - t0)
        if has_val and vl < min(history["val_loss"][:-1]):
            best_variables, best_epoch = variables, epoch
        bar.set_postfix(train=f"{float(tl):.3f}", val=f"{vl:.3f}")
        if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
            save(epoch)
    variables = local({"params": params, "constants": constants})
    if not has_val:
        best_variables, best_epoch = variables, config.epochs
    if out is not None and start >= config.epochs:
        plot_curves(history, out / CURVES)
    return TrainResult(variables, best_variables, best_epoch, history, decoder_config, config, pca.explained)


def plot_curves(history: dict, path) -> None:
    """Training/validation loss per epoch as a PNG (matplotlib Agg, written atomically)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ep = np.asarray(history["epoch"])
    ax.plot(ep, history["train_loss"], label="training")
    val = np.asarray(history["val_loss"], float)
    if np.any(np.isfinite(val)):
        ax.plot(ep, val, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted per-vertex L1 (mm)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
