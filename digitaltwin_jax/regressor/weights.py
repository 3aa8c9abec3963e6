"""Saved regressors: decoder weights + the record of how they were made (paper section 3.3).

A regressor folder holds

* ``decoder.msgpack`` -- ``flax.serialization`` of ``{"params", "constants"}`` (float32);
* ``config.json`` -- the decoder architecture, the training settings, the encoder it expects, the
  head-model resolution, the dataset (path, seed, sampler, sizes) and the split;
* ``metrics.json`` -- measured numbers (losses, held-out ARMSE), optional.

The shipped one is ``digitaltwin_jax/assets/regressor/``.  All writes are atomic.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.io.atomic import atomic_write_bytes, atomic_write_text
from digitaltwin_jax.regressor.decoder import DecoderConfig, ShapeDecoder

__all__ = ["Regressor", "save_regressor", "load_regressor", "shipped_regressor_dir"]

WEIGHTS = "decoder.msgpack"
CONFIG = "config.json"
METRICS = "metrics.json"


@dataclasses.dataclass(frozen=True)
class Regressor:
    """A trained decoder ready to apply.

    Attributes:
      config: the architecture.  variables: ``{"params", "constants"}`` (jax arrays).
      record: the ``config.json`` content (encoder name, resolution, dataset, training settings).
      metrics: the ``metrics.json`` content (may be empty).
    """

    config: DecoderConfig
    variables: dict
    record: dict
    metrics: dict

    @property
    def resolution(self) -> str:
        return str(self.record.get("resolution", "low"))

    @property
    def encoder(self) -> str:
        return str(self.record.get("encoder", "dlib_resnet_v1"))

    def __call__(self, embeddings) -> jax.Array:
        """``(D,)`` or ``(B, D)`` float embeddings -> ``(V, 3)`` or ``(B, V, 3)`` float32 vertices (mm)."""
        e = jnp.asarray(embeddings, jnp.float32)
        if e.ndim not in (1, 2) or e.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"embeddings must be ({self.config.embedding_dim},) or (B, {self.config.embedding_dim}), got {e.shape}")
        if not np.isfinite(np.asarray(e)).all():  # on the host: no compiled reduction for a check
            raise ValueError("embeddings contain NaN or inf")
        return _apply(self.config, self.variables, e)


def _apply(config: DecoderConfig, variables: dict, e: jax.Array) -> jax.Array:
    return _jitted(config)(variables, e)


_JIT_CACHE: dict = {}


def _jitted(config: DecoderConfig):
    fn = _JIT_CACHE.get(config)
    if fn is None:
        fn = jax.jit(ShapeDecoder(config).apply)
        _JIT_CACHE[config] = fn
    return fn


def save_regressor(folder, config: DecoderConfig, variables: dict, record: dict, metrics: dict | None = None) -> Path:
    """Write a regressor folder (created if needed); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    host = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), variables)
    atomic_write_bytes(folder / WEIGHTS, flax.serialization.msgpack_serialize(host))
    rec = dict(record)
    rec["decoder"] = config.to_dict()
    atomic_write_text(folder / CONFIG, json.dumps(rec, indent=2, sort_keys=True))
    if metrics is not None:
        atomic_write_text(folder / METRICS, json.dumps(metrics, indent=2, sort_keys=True))
    return folder


def shipped_regressor_dir() -> Path:
    """``digitaltwin_jax/assets/regressor`` (the weights that ship with the package)."""
    from digitaltwin_jax.model.head_model import asset_path

    return asset_path("regressor")


def load_regressor(folder=None) -> Regressor:
    """Load a regressor folder (default: the shipped one).

    Raises:
      FileNotFoundError: the folder or its ``decoder.msgpack`` / ``config.json`` is missing.
      ValueError: the weights do not match the recorded architecture.
    """
    folder = shipped_regressor_dir() if folder is None else Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(f"regressor file {folder / name} is missing")
    record = json.loads((folder / CONFIG).read_text())
    config = DecoderConfig.from_dict(record["decoder"])
    # the architecture's shapes only (abstract evaluation: no initialisation is run or compiled)
    template = jax.eval_shape(lambda: ShapeDecoder(config).init(jax.random.key(0), jnp.zeros((1, config.embedding_dim))))
    template = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, np.float32), dict(template))
    raw = flax.serialization.msgpack_restore((folder / WEIGHTS).read_bytes())
    want = jax.tree_util.tree_map(np.shape, template)
    got = jax.tree_util.tree_map(np.shape, raw)
    if want != got:
        raise ValueError(f"weights in {folder} do not match the recorded architecture {config}")
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), raw)
    metrics = json.loads((folder / METRICS).read_text()) if (folder / METRICS).exists() else {}
    return Regressor(config, variables, record, metrics)
