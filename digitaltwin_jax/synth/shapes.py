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
    "DetailedSource",
    "smooth_detail",
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


def smooth_detail(model, rng: np.random.Generator, rms: float, *, smoothing_steps: int = 12,
                  projector: IdentityProjector | None = None) -> np.ndarray:
    """A smooth random surface displacement outside the identity span, ``(V, 3) float32`` mm.

    White noise along the mean head's vertex normals, smoothed by ``smoothing_steps`` rounds of
    one-ring averaging (features of roughly ``smoothing_steps`` edge lengths, i.e. bumps of a few
    centimetres: cheekbones, nose bridge, brow ridges that no identity mode carries), with its
    least-squares identity component removed (so it is detail the 100 identity modes cannot
    express), then scaled to RMS ``rms`` mm over the vertices within 95 mm of the nose tip (the face,
    where the benchmark measures).
    """
    from digitaltwin_jax.geometry.mesh import one_ring, vertex_normals

    v = np.asarray(model.vertices, np.float64)
    faces = np.asarray(model.faces)
    n = np.asarray(vertex_normals(v, faces), np.float64)
    nbr, w = one_ring(faces, v.shape[0])
    nbr, w = np.asarray(nbr), np.asarray(w, np.float64)
    x = rng.normal(size=v.shape[0])
    for _ in range(int(smoothing_steps)):
        x = 0.5 * x + 0.5 * (w * x[nbr]).sum(1) / np.maximum(w.sum(1), 1e-12)
    d = x[:, None] * n
    projector = projector or IdentityProjector(v, model.identity_basis)
    d_flat = d.ravel()
    d_flat = d_flat - projector.q @ (projector.q.T @ d_flat)
    d = d_flat.reshape(-1, 3)
    face = np.linalg.norm(v - v[int(model.nose_tip_index)], axis=1) <= 95.0
    cur = float(np.sqrt((d[face] ** 2).sum(1).mean()))
    return (d * (float(rms) / max(cur, 1e-12))).astype(np.float32)


class DetailedSource:
    """Wraps a shape source and adds :func:`smooth_detail` of RMS ``U(rms_range)`` mm to every head
    (out-of-distribution test heads: detail outside the model's identity modes)."""

    def __init__(self, base, model, rms_range: tuple[float, float]):
        lo, hi = (float(x) for x in rms_range)
        if not 0.0 <= lo <= hi:
            raise ValueError(f"rms_range must satisfy 0 <= lo <= hi, got {rms_range}")
        self.base, self.model, self.rms_range = base, model, (lo, hi)
        self.projector = getattr(base, "projector", None) or IdentityProjector(model.vertices, model.identity_basis)
        self.name = f"{getattr(base, 'name', 'shapes')}+detail"

    def sample(self, rng: np.random.Generator, index: int | None = None) -> ShapeSample:
        s = self.base.sample(rng, index=index)
        rms = rng.uniform(*self.rms_range)
        v = np.asarray(s.vertices, np.float32) + smooth_detail(self.model, rng, rms, projector=self.projector)
        a, res = self.projector(v)
        return ShapeSample(v, a, res, s.subject, s.group)


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
