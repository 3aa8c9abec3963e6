"""The starting shape of a multi-view fit and the checks on a group of photos (issue 16).

* :func:`combined_shape`: the regressor's shape estimate combined across photos: the decoder at the
  mean identity embedding of the views, pulled toward the template by the out-of-distribution guard
  at that mean embedding (the single-photo default, ``guarded``, with the views' evidence averaged;
  embeddings of one person scatter around a centre, so their mean is a less noisy input);
* :func:`embedding_distances`, :func:`check_same_person`: pairwise identity-embedding distances and
  the same-person test (dlib's ResNet: two faces are of one person below 0.6);
* :func:`camera_groups`: which photos share intrinsics (same EXIF camera model and focal length).
"""
from __future__ import annotations

import numpy as np

__all__ = ["SAME_PERSON_THRESHOLD", "DifferentPeopleError", "combined_shape", "embedding_distances",
           "check_same_person", "camera_groups"]

SAME_PERSON_THRESHOLD = 0.6  # dlib face recognition ResNet: same person below this Euclidean distance


class DifferentPeopleError(ValueError):
    """Two photos given as one person look like different people (command line: exit code 2)."""


def combined_shape(model, embeddings, regressor, guard=None) -> np.ndarray:
    """``(N, 3) float64`` the guarded regressor shape at the mean of ``embeddings (V, D)`` (rows with
    NaN are skipped).

    Args:
      model: the head model (its ``vertices`` are the template the guard pulls toward).
      regressor: ``(B, D) -> (B, N, 3)``; guard: an :class:`~digitaltwin_jax.regressor.guard.OODGuard`
        or None (the plain regressor).

    Raises:
      ValueError: no finite embedding.
    """
    e = np.asarray(embeddings, np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (V, D), got {e.shape}")
    ok = np.all(np.isfinite(e), axis=1)
    if not ok.any():
        raise ValueError("no finite identity embedding to combine")
    mean = e[ok].mean(axis=0, keepdims=True).astype(np.float32)
    pred = np.asarray(regressor(mean), np.float64)
    if guard is not None:
        pred = np.asarray(guard.apply(model.vertices, pred, mean), np.float64)
    return pred[0]


def embedding_distances(embeddings) -> np.ndarray:
    """``(V, V)`` Euclidean distances between identity embeddings ``(V, D)``."""
    e = np.asarray(embeddings, np.float64)
    return np.linalg.norm(e[:, None] - e[None], axis=-1)


def check_same_person(embeddings, names=None, threshold: float = SAME_PERSON_THRESHOLD) -> np.ndarray:
    """Raise when two photos are of different people (embedding distance above ``threshold``).

    Returns the ``(V, V)`` distance matrix.  Raises :class:`DifferentPeopleError` naming the farthest
    pair (by ``names``, default ``photo i``).
    """
    d = embedding_distances(embeddings)
    names = [f"photo {i}" for i in range(d.shape[0])] if names is None else list(names)
    if d.shape[0] > 1:
        dd = np.where(np.isfinite(d), d, -np.inf)
        i, j = np.unravel_index(int(np.argmax(dd)), dd.shape)
        if dd[i, j] > threshold:
            raise DifferentPeopleError(f"{names[i]} and {names[j]} look like different people (identity-embedding distance "
                             f"{d[i, j]:.3f} > {threshold}); pass --force (force=True) to reconstruct them as one person")
    return d


def camera_groups(exif_keys) -> np.ndarray:
    """``(V,) int`` camera group of each photo: photos with equal, known keys (e.g. ``(camera model,
    focal length)`` from EXIF) share a group; a photo whose key is None gets its own."""
    groups, seen = [], {}
    for i, k in enumerate(exif_keys):
        if k is None:
            groups.append(len(seen) + 1000 + i)
            continue
        groups.append(seen.setdefault(k, len(seen)))
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    return inv.astype(np.int64)
