"""The shape decoder of the shape regression network (paper section 3.3).

embedding (D,) -> [standardise] -> FC 128 -> ELU -> FC 200 (linear: PCA coefficients) -> FC 3V
(linear: the PCA basis) -> vertices (V, 3) mm.

The paper uses three fully connected layers of 128, 200 and 8,775 (= 3 x 2,925) units on a 256-d
LightCNN-29V2 feature; we use the pluggable front end's embedding (dlib ResNet, D = 128) and the
``"low"`` head model (V = 2,900, 3V = 8,700), so ~1.79 M parameters.  As in the paper the last layer
is initialised with the 200 leading PCA components of the training shapes and their mean as bias.

Activations (the paper does not give them):
  * layer 1: ELU -- smooth and non-saturating for positive inputs, no dead units (with only 128
    units a dead ReLU unit is a real loss), close to the identity near 0 so the network starts near
    a linear embedding->coefficient map, which is what a PCA-initialised decoder wants;
  * layer 2: none -- its outputs are PCA coefficients, signed and unbounded;
  * layer 3: none -- mean + coefficients @ components is linear by construction.

``pca_scale="std"`` (our default) stores the components multiplied by the standard deviation of
their coefficient in the training set, so the second layer predicts *standardised* coefficients
(~N(0, 1)); ``"unit"`` stores the orthonormal components themselves (the literal initialisation).
Both span the same space and give the same function class; the scaled version trains much faster
with Adam at the paper's learning rate of 1e-4, whose steps are ~1e-4 per weight whatever the
gradient scale (unit components need coefficients of hundreds of mm).  Measured numbers are in the
package README.

The embedding's training-set mean and standard deviation live in the non-trainable ``"constants"``
collection, so the decoder takes the raw embedding.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DecoderConfig",
    "PCABasis",
    "ShapeDecoder",
    "pca_basis",
    "init_decoder",
    "decode",
    "num_parameters",
]

_ACTIVATIONS = {
    "elu": nn.elu,
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, 0.2),
    "tanh": jnp.tanh,
    "linear": lambda x: x,
}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture of the decoder (paper section 3.3).

    Attributes:
      embedding_dim: input size D (128 for the dlib front end; 256 for the paper's LightCNN).
      num_vertices: V of the head model the decoder predicts (2,900 for ``"low"``).
      hidden: width of the first FC layer (128 in the paper).
      num_components: width of the second FC layer = number of PCA components (200 in the paper).
      activation: activation after the first layer (one of elu, relu, leaky_relu, tanh, linear).
      pca_scale: ``"std"`` (components times their coefficient std) or ``"unit"`` (orthonormal).
    """

    embedding_dim: int = 128
    num_vertices: int = 2900
    hidden: int = 128
    num_components: int = 200
    activation: str = "elu"
    pca_scale: str = "std"

    def __post_init__(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.pca_scale not in ("std", "unit"):
            raise ValueError(f"pca_scale must be 'std' or 'unit', got {self.pca_scale!r}")
        for name in ("embedding_dim", "num_vertices", "hidden", "num_components"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class PCABasis:
    """PCA of a set of shapes, flattened ``(V, 3) -> (3V,)`` in row-major (x0, y0, z0, x1, ...) order.

    Attributes:
      mean: ``(3V,) float32`` mean shape.
      components: ``(C, 3V) float32`` orthonormal principal directions, by decreasing variance
        (rows past the rank of the data are zero).
      stddev: ``(C,) float32`` standard deviation of each coefficient over the shapes (0 past the rank).
      explained: fraction of the total variance the C components explain.
    """

    mean: np.ndarray
    components: np.ndarray
    stddev: np.ndarray
    explained: float


def pca_basis(shapes, num_components: int = 200) -> PCABasis:
    """PCA (float64 SVD of the centred data) of ``shapes (N, V, 3)`` or ``(N, 3V)``.

    If the data has fewer than ``num_components`` non-trivial directions, the remaining rows of
    ``components`` are zero (so a decoder still has ``num_components`` coefficient units).
    Signs are fixed so that the largest-magnitude entry of every component is positive.
    """
    x = np.asarray(shapes, dtype=np.float64)
    if x.ndim == 3:
        if x.shape[2] != 3:
            raise ValueError(f"shapes must be (N, V, 3) or (N, 3V), got {x.shape}")
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"shapes must be (N, V, 3) or (N, 3V) with N >= 2, got {np.shape(shapes)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("shapes contain NaN or inf")
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    _, s, vt = np.linalg.svd(xc, full_matrices=False)  # (r,), (r, d)
    tol = s[0] * max(n, d) * np.finfo(np.float64).eps if s.size and s[0] > 0 else 0.0
    rank = int(np.sum(s > tol))
    c = min(num_components, rank)
    comps = np.zeros((num_components, d))
    comps[:c] = vt[:c]
    idx = np.argmax(np.abs(comps[:c]), axis=1)
    signs = np.sign(comps[np.arange(c), idx])
    comps[:c] *= signs[:, None]
    std = np.zeros(num_components)
    std[:c] = s[:c] / np.sqrt(n - 1)
    total = float(np.sum(s**2))
    explained = float(np.sum(s[:c] ** 2) / total) if total > 0 else 1.0
    return PCABasis(
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        stddev=std.astype(np.float32),
        explained=explained,
    )


class ShapeDecoder(nn.Module):
    """Flax module: raw embeddings ``(..., D)`` -> vertices ``(..., V, 3)`` float32 (mm)."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, embedding: jax.Array) -> jax.Array:
        cfg = self.config
        d = cfg.embedding_dim
        mu = self.variable("constants", "input_mean", lambda: jnp.zeros((d,), jnp.float32))
        sd = self.variable("constants", "input_std", lambda: jnp.ones((d,), jnp.float32))
        x = (embedding - mu.value) / sd.value
        x = nn.Dense(cfg.hidden, name="fc1")(x)
        x = _ACTIVATIONS[cfg.activation](x)
        x = nn.Dense(cfg.num_components, name="fc2")(x)
        x = nn.Dense(3 * cfg.num_vertices, name="fc3")(x)
        return x.reshape(x.shape[:-1] + (cfg.num_vertices, 3))


@functools.lru_cache(maxsize=16)
def _jitted_init(config: DecoderConfig):
    return jax.jit(ShapeDecoder(config).init)


def init_decoder(
    key: jax.Array,
    config: DecoderConfig,
    pca: PCABasis,
    embedding_mean=None,
    embedding_std=None,
) -> dict:
    """Initial variables ``{"params": ..., "constants": ...}`` for :class:`ShapeDecoder`.

    Layers 1-2 get Flax's default (LeCun-normal) init; layer 3 gets ``kernel = components`` (scaled
    by ``pca.stddev`` when ``config.pca_scale == "std"``), ``bias = pca.mean``.

    Args:
      key: a ``jax.random`` key.
      config: the architecture.
      pca: a :class:`PCABasis` with ``config.num_components`` rows of length ``3 * num_vertices``.
      embedding_mean, embedding_std: ``(D,)`` training-set statistics of the embeddings (defaults
        0 and 1); std entries below 1e-6 are clamped to 1e-6.
    """
    d, v3, c = config.embedding_dim, 3 * config.num_vertices, config.num_components
    if pca.components.shape != (c, v3) or pca.mean.shape != (v3,):
        raise ValueError(
            f"PCA basis shapes {pca.components.shape} / {pca.mean.shape} do not match the config "
            f"(expected ({c}, {v3}) / ({v3},))"
        )
    variables = _jitted_init(config)(key, jnp.zeros((1, d), jnp.float32))
    params = jax.tree_util.tree_map(lambda a: a, dict(variables["params"]))
    kernel = np.asarray(pca.components, np.float32)  # (C, 3V): x @ kernel
    if config.pca_scale == "std":
        kernel = kernel * np.asarray(pca.stddev, np.float32)[:, None]
    params["fc3"] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(pca.mean, jnp.float32)}
    mean = np.zeros(d, np.float32) if embedding_mean is None else np.asarray(embedding_mean, np.float32)
    std = np.ones(d, np.float32) if embedding_std is None else np.asarray(embedding_std, np.float32)
    if mean.shape != (d,) or std.shape != (d,):
        raise ValueError(f"embedding_mean/std must have shape ({d},), got {mean.shape} / {std.shape}")
    std = np.maximum(std, 1e-6)
    return {"params": params, "constants": {"input_mean": jnp.asarray(mean), "input_std": jnp.asarray(std)}}


def decode(config: DecoderConfig, variables: dict, embeddings) -> jax.Array:
    """Apply the decoder: ``embeddings (..., D)`` -> ``(..., V, 3)`` vertices in mm (pure; float32 for
    float32 input and parameters)."""
    e = jnp.asarray(embeddings)
    if not jnp.issubdtype(e.dtype, jnp.floating):
        e = e.astype(jnp.float32)
    if e.shape[-1] != config.embedding_dim:
        raise ValueError(f"embeddings must have last dimension {config.embedding_dim}, got shape {e.shape}")
    return ShapeDecoder(config).apply(variables, e)


def num_parameters(variables: dict[str, Any]) -> int:
    """Number of trainable parameters (the ``"params"`` collection)."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["params"])))
