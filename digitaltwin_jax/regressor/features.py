"""Decoder inputs beyond the identity embedding (issue "regressor on real photos", item 4).

``landmark_geometry``: the 68 detected 2-D landmarks with translation, scale and in-plane rotation
removed (a similarity Procrustes alignment to a fixed reference shape), flattened to 136 numbers.
What is left is the face's 2-D proportions, expression and out-of-plane pose, which do not depend
on how photorealistic a render is.  ``with_landmarks`` concatenates them to the embedding, so a
decoder with ``embedding_dim = 128 + 136`` takes both (the decoder standardises every input).

Alignment (2-D orthogonal Procrustes with scale): for centred points ``X (68, 2)`` and a centred
reference ``Y`` with ``||Y||_F = 1``, ``s R = argmin ||s X R - Y||`` has ``R = U V^T`` from the SVD
``X^T Y = U S V^T`` (reflections excluded: ``det R = +1``) and ``s = tr(S') / ||X||_F^2``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["landmark_geometry", "with_landmarks", "reference_landmarks", "LANDMARK_FEATURES"]

LANDMARK_FEATURES = 136


def reference_landmarks(landmarks) -> np.ndarray:
    """``(68, 2) float64`` reference shape: the centred, unit-norm first valid row of ``landmarks``
    (``(N, 68, 2)``), refined by two rounds of generalised Procrustes (mean of the aligned shapes).

    Raises:
      ValueError: no row without NaN.
    """
    lm = np.asarray(landmarks, np.float64)
    ok = np.all(np.isfinite(lm), axis=(1, 2))
    if not ok.any():
        raise ValueError("no landmark row without NaN to build a reference from")
    ref = _normalise(lm[ok][0])
    for _ in range(2):
        ref = _normalise(_align(lm[ok], ref).mean(axis=0))
    return ref


def _normalise(x):
    x = x - x.mean(axis=0)
    return x / np.linalg.norm(x)


def _align(lm, ref):
    """``(N, 68, 2)`` rows of ``lm`` similarity-aligned onto the centred unit-norm ``ref``."""
    x = lm - lm.mean(axis=1, keepdims=True)
    m = np.einsum("nki,kj->nij", x, ref)  # X^T Y
    u, s, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))
    s = s.copy()
    s[:, 1] *= d
    u = u.copy()
    u[:, :, 1] *= d[:, None]
    r = np.einsum("nij,njk->nik", u, vt)
    scale = s.sum(axis=1) / np.maximum(np.sum(x**2, axis=(1, 2)), 1e-300)
    return scale[:, None, None] * np.einsum("nki,nij->nkj", x, r)


def landmark_geometry(landmarks, reference) -> np.ndarray:
    """``(N, 136) float32`` similarity-normalised landmark coordinates (module docstring); rows with
    a NaN landmark stay NaN.

    Args:
      landmarks: ``(N, 68, 2)`` pixel coordinates.
      reference: ``(68, 2)`` reference shape (:func:`reference_landmarks`).
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got {lm.shape}")
    ref = np.asarray(reference, np.float64)
    if ref.shape != (68, 2):
        raise ValueError(f"reference must be (68, 2), got {ref.shape}")
    ref = _normalise(ref)
    out = np.full((lm.shape[0], LANDMARK_FEATURES), np.nan)
    ok = np.all(np.isfinite(lm), axis=(1, 2))
    if ok.any():
        out[ok] = _align(lm[ok], ref).reshape(int(ok.sum()), -1)
    return out.astype(np.float32)


def with_landmarks(embeddings, landmarks, reference) -> np.ndarray:
    """``(N, D + 136) float32``: embeddings followed by :func:`landmark_geometry`."""
    e = np.asarray(embeddings, np.float32)
    return np.concatenate([e, landmark_geometry(landmarks, reference)], axis=1)
