"""Head shapes for the synthetic renders (paper section 3.2 "Shape Augmentation"; supplementary 4.4
ablation: DR sampling, C-PCA, No-Aug).

A *shape source* draws a neutral (or expressive) head from a population:

* :class:`GaussianIdentitySource`: identity coefficients ``N(0, sigma^2)`` on the model's identity
  modes (the model's own prior; no subjects);
* :class:`PopulationSource`: wraps any per-image population sampler ``sample_fn(rng) -> (vertices,
  subject, group)``; each sample knows the population subject it is closest to, whose albedo it
  takes (the paper's texture assignment).  The data-set writer uses the batch samplers of
  :mod:`digitaltwin_jax.geometry.sampling` instead (:mod:`digitaltwin_jax.synth.population`).

Every source has ``sample(rng, index=None) -> ShapeSample`` (``index``: the image's data-set index,
for sources that pre-sample all shapes, :class:`digitaltwin_jax.synth.population.PrecomputedShapes`).
:func:`random_expression` draws the optional expression (off by default: the paper renders neutral
scans).
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "ShapeSample",
    "GaussianIdentitySource",
    "PopulationSource",
    "IdentityProjector",
    "random_expression",
]


@dataclasses.dataclass(frozen=True)
class ShapeSample:
    """One head shape.

    Attributes:
      vertices: ``(V, 3) float32`` neutral head, head frame, mm.
      identity: ``(K,) float32`` identity coefficients (for non-linear samplers: the least-squares
        projection onto the identity modes; see ``identity_residual``).
      identity_residual: RMS distance (mm) between ``vertices`` and the shape rebuilt from
        ``identity`` (0 for linear sources).
      subject: index of the closest population subject, -1 when the source has no subjects.
      group: population group id of that subject (-1 when unknown).
    """

    vertices: np.ndarray
    identity: np.ndarray
    identity_residual: float
    subject: int
    group: int = -1


class IdentityProjector:
    """Least-squares identity coefficients of a shape: ``argmin_a |mean + B a - P|`` (QR of the
    ``(3V, K)`` basis computed once)."""

    def __init__(self, mean, basis):
        self.mean = np.asarray(mean, np.float64)
        b = np.asarray(basis, np.float64)  # (K, V, 3)
        self.k = b.shape[0]
        self.q, self.r = np.linalg.qr(b.reshape(self.k, -1).T)  # (3V, K), (K, K)

    def __call__(self, vertices):
        d = (np.asarray(vertices, np.float64) - self.mean).ravel()
        qtd = self.q.T @ d
        a = np.linalg.solve(self.r, qtd)
        resid = d - self.q @ qtd
        return a.astype(np.float32), float(np.sqrt((resid**2).sum() / (d.size / 3)))


@dataclasses.dataclass
class GaussianIdentitySource:
    """Identity coefficients ``N(0, sigma^2)`` on the first ``num_modes`` identity modes."""

    model: object
    sigma: float = 1.0
    num_modes: int | None = None
    name: str = "gaussian"

    def __post_init__(self):
        b = np.asarray(self.model.identity_basis, np.float32)
        self._basis = np.ascontiguousarray(b.reshape(b.shape[0], -1))  # (K, 3V), contiguous once

    def sample(self, rng: np.random.Generator, index: int | None = None) -> ShapeSample:
        k_all = int(self._basis.shape[0])
        k = k_all if self.num_modes is None else int(self.num_modes)
        a = np.zeros(k_all, np.float32)
        a[:k] = rng.normal(0.0, self.sigma, size=k)
        v = self.model.vertices + (a @ self._basis).reshape(-1, 3)
        return ShapeSample(v.astype(np.float32), a, 0.0, -1, -1)


@dataclasses.dataclass
class PopulationSource:
    """A population sampler: ``sample_fn(rng) -> (vertices (V, 3), subject, group)``.

    ``projector`` turns the sampled vertices into identity coefficients for the metadata.
    """

    sample_fn: object
    projector: IdentityProjector
    name: str = "population"

    def sample(self, rng: np.random.Generator, index: int | None = None) -> ShapeSample:
        v, subject, group = self.sample_fn(rng)
        a, res = self.projector(v)
        return ShapeSample(np.asarray(v, np.float32), a, res, int(subject), int(group))


# Blendshapes that move only the eyes/eyelids are skipped: the eyes are masked.
_SKIP_PREFIX = ("eyeLook", "eyeBlink", "eyeWide", "eyeSquint")


def random_expression(rng: np.random.Generator, names, *, max_active: int = 3, max_weight: float = 0.7) -> np.ndarray:
    """``(M,) float32`` sparse expression weights: 1..``max_active`` random blendshapes (eye-only
    shapes excluded) at ``U(0, max_weight)``."""
    names = list(names)
    ok = np.array([i for i, n in enumerate(names) if not n.startswith(_SKIP_PREFIX)])
    w = np.zeros(len(names), np.float32)
    k = int(rng.integers(1, max_active + 1))
    idx = rng.choice(ok, size=k, replace=False)
    w[idx] = rng.uniform(0.0, max_weight, size=k)
    return w
