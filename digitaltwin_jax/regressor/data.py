"""Training data of the shape regressor: (identity embedding, ground-truth vertices) pairs.

The paper (section 3.3) trains on 10,000 synthetic renders of augmented heads; the encoder's
features are computed once and cached next to the data (``embeddings.npz`` in the dataset folder,
see :func:`load_synth_dataset`).  This module is the data layer only: a small frozen container, a
subject-disjoint split, the synthetic-shard reader with its embedding cache, and a generated toy
set for tests.

Arrays: ``embeddings (N, D) float32``, ``vertices (N, V, 3) float32`` (mm, head frame),
``subject_ids (N,) int64`` (renders of the same head share an id: splits never separate them).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "ShapeDataset",
    "split_by_subject",
    "make_toy_dataset",
    "concat_datasets",
]


@dataclasses.dataclass(frozen=True)
class ShapeDataset:
    """Embedding/shape pairs.

    Attributes:
      embeddings: ``(N, D) float32`` encoder features of the images.
      vertices: ``(N, V, 3) float32`` ground-truth neutral head of each image, mm.
      subject_ids: ``(N,) int64`` id of the head (several renders of one head share it).
      sample_ids: ``(N,)`` str, where each sample came from (e.g. ``"shard_000/12"``).
    """

    embeddings: np.ndarray
    vertices: np.ndarray
    subject_ids: np.ndarray
    sample_ids: np.ndarray

    def __post_init__(self):
        e, v, s = self.embeddings, self.vertices, self.subject_ids
        if e.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got {e.shape}")
        if v.ndim != 3 or v.shape[2] != 3:
            raise ValueError(f"vertices must be (N, V, 3), got {v.shape}")
        n = e.shape[0]
        if v.shape[0] != n or s.shape != (n,) or self.sample_ids.shape != (n,):
            raise ValueError(
                f"inconsistent sizes: embeddings {e.shape}, vertices {v.shape}, subject_ids {s.shape}, "
                f"sample_ids {self.sample_ids.shape}"
            )
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(v))):
            raise ValueError("dataset contains NaN or inf")

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[1])

    def take(self, index) -> "ShapeDataset":
        """The samples at ``index`` (int array or boolean mask)."""
        return ShapeDataset(
            self.embeddings[index], self.vertices[index], self.subject_ids[index], self.sample_ids[index]
        )


def make_dataset(embeddings, vertices, subject_ids=None, sample_ids=None) -> ShapeDataset:
    """Build a :class:`ShapeDataset` with dtype conversion (ids default to 0..N-1)."""
    e = np.asarray(embeddings, np.float32)
    v = np.asarray(vertices, np.float32)
    n = e.shape[0]
    s = np.arange(n, dtype=np.int64) if subject_ids is None else np.asarray(subject_ids, np.int64)
    ids = np.array([str(i) for i in range(n)]) if sample_ids is None else np.asarray(sample_ids).astype(str)
    return ShapeDataset(e, v, s, ids)


__all__.append("make_dataset")


def concat_datasets(parts) -> ShapeDataset:
    """Concatenate datasets (same D and V)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no datasets to concatenate")
    return ShapeDataset(
        np.concatenate([p.embeddings for p in parts]),
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.subject_ids for p in parts]),
        np.concatenate([p.sample_ids for p in parts]),
    )


def split_by_subject(dataset: ShapeDataset, fraction: float, seed: int = 0) -> tuple[ShapeDataset, ShapeDataset]:
    """Split into (rest, held) with about ``fraction`` of the *subjects* held out (at least one).

    Every render of a subject lands on the same side, so the held part has heads never seen in
    the rest.  Deterministic for a seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    subjects = np.unique(dataset.subject_ids)
    if subjects.size < 2:
        raise ValueError("need at least two subjects to split by subject")
    rng = np.random.default_rng(seed)
    k = min(max(1, int(round(fraction * subjects.size))), subjects.size - 1)
    held = rng.choice(subjects, size=k, replace=False)
    mask = np.isin(dataset.subject_ids, held)
    return dataset.take(~mask), dataset.take(mask)


def make_toy_dataset(
    mean,
    basis,
    num_samples: int,
    embedding_dim: int = 128,
    num_coeffs: int | None = None,
    noise: float = 0.05,
    seed: int = 0,
    projection_seed: int = 1234,
) -> tuple[ShapeDataset, np.ndarray]:
    """A generated stand-in for rendered data: random identity shapes + synthetic embeddings.

    ``shape = mean + a @ basis`` with ``a ~ N(0, I)``; ``embedding = tanh(a @ P) + noise * n`` with
    a fixed random ``P`` (from ``projection_seed``, shared by train and test sets) -- a nonlinear
    but learnable map, as a face-recognition feature is.

    Args:
      mean: ``(V, 3)`` mean shape; basis: ``(K, V, 3)`` identity modes (e.g. ``model.identity_basis``).
      num_samples: N. embedding_dim: D. num_coeffs: use the leading modes only (default K).
      noise: std of the additive embedding noise. seed: sample seed.

    Returns:
      (dataset, coefficients ``(N, K') float32``).
    """
    mean = np.asarray(mean, np.float32)
    basis = np.asarray(basis, np.float32)
    k = basis.shape[0] if num_coeffs is None else int(num_coeffs)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((num_samples, k)).astype(np.float32)
    verts = mean[None] + np.tensordot(a, basis[:k], axes=1)
    proj = np.random.default_rng(projection_seed).standard_normal((k, embedding_dim)).astype(np.float32)
    proj /= np.sqrt(k)
    emb = np.tanh(a @ proj) + noise * rng.standard_normal((num_samples, embedding_dim)).astype(np.float32)
    ds = make_dataset(emb, verts, np.arange(num_samples), [f"toy/{seed}/{i}" for i in range(num_samples)])
    return ds, a


# --------------------------------------------------------------------------------------------------
# synthetic shards (digitaltwin_jax.synth) + the embedding cache
# --------------------------------------------------------------------------------------------------
EMBEDDING_CACHE = "embeddings_{name}.npz"


def load_embedding_cache(path: Path) -> dict[str, np.ndarray]:
    """``{sample_id: (D,) float32}`` from a cache file (empty when absent); NaN rows = no face found."""
    path = Path(path)
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as z:
        ids = z["sample_ids"].astype(str)
        emb = z["embeddings"].astype(np.float32)
    return dict(zip(ids.tolist(), emb))


def save_embedding_cache(path: Path, cache: dict[str, np.ndarray], meta: dict | None = None) -> None:
    """Write the cache atomically (sorted by sample id)."""
    import io

    from digitaltwin_jax.io.atomic import atomic_write_bytes

    ids = sorted(cache)
    d = len(next(iter(cache.values()))) if cache else 0
    emb = np.stack([cache[i] for i in ids]).astype(np.float32) if ids else np.zeros((0, d), np.float32)
    buf = io.BytesIO()
    np.savez(buf, sample_ids=np.array(ids, dtype=str), embeddings=emb, meta=json.dumps(meta or {}))
    atomic_write_bytes(path, buf.getvalue())


__all__ += ["load_embedding_cache", "save_embedding_cache", "EMBEDDING_CACHE"]


def cached_embeddings(
    samples,
    embed_fn: Callable[[str], np.ndarray | None],
    cache_path: Path,
    meta: dict | None = None,
    save_every: int = 200,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Compute embeddings for ``samples`` (an iterable of sample ids) with a resumable cache.

    ``embed_fn(sample_id) -> (D,) float32 or None`` (None: no face found, stored as a NaN row so the
    sample is not retried).  Already cached ids are skipped; the cache is rewritten every
    ``save_every`` new embeddings and at the end, so an interrupted run resumes where it stopped.
    """
    from tqdm.auto import tqdm

    cache = load_embedding_cache(cache_path)
    todo = [s for s in samples if s not in cache]
    dim = len(next(iter(cache.values()))) if cache else None
    new = 0
    for sid in tqdm(todo, desc="embeddings", disable=not progress or not todo):
        e = embed_fn(sid)
        if e is None:
            if dim is None:
                # remember the miss with a placeholder row sized after the first success
                cache[sid] = None  # type: ignore[assignment]
                continue
            e = np.full(dim, np.nan, np.float32)
        e = np.asarray(e, np.float32).ravel()
        if dim is None:
            dim = e.shape[0]
            for k, val in list(cache.items()):
                if val is None:
                    cache[k] = np.full(dim, np.nan, np.float32)
        cache[sid] = e
        new += 1
        if new % save_every == 0:
            save_embedding_cache(cache_path, {k: v for k, v in cache.items() if v is not None}, meta)
    cache = {k: v for k, v in cache.items() if v is not None}
    if new:
        save_embedding_cache(cache_path, cache, meta)
    return cache


__all__.append("cached_embeddings")
