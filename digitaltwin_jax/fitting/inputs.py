"""Checks of the user's inputs (landmarks, image size, regressed shape) shared by the fit's stages."""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.model.head_model import HeadModel


def _check_landmarks(landmarks_2d) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(landmarks_2d)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"landmarks_2d must be a real numeric array, got dtype {raw.dtype}")
    lm = raw.astype(np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks_2d must have shape (68, 2), got {lm.shape}")
    if np.isinf(lm).any():
        rows = np.flatnonzero(np.isinf(lm).any(axis=1)).tolist()
        raise ValueError(f"landmarks_2d has infinite values in rows {rows}; mark missing landmarks with NaN")
    valid = np.all(np.isfinite(lm), axis=1)
    if valid.sum() < 6:
        raise ValueError(f"need at least 6 finite landmarks to fit, got {int(valid.sum())}")
    p = lm[valid] - lm[valid].mean(axis=0)
    s = np.linalg.svd(p, compute_uv=False)
    if s[0] <= 1e-9 or s[1] / s[0] < 1e-3:
        raise ValueError("landmarks are (nearly) collinear or coincident: cannot fit a face to them")
    return lm, valid


def _check_image_size(image_size) -> tuple[int, int]:
    if len(image_size) != 2 or not all(np.isfinite(image_size)) or min(image_size) <= 0:
        raise ValueError(f"image_size must be (h, w) with positive entries, got {image_size}")
    return int(image_size[0]), int(image_size[1])


def _base_shape(model: HeadModel, shape) -> np.ndarray:
    if shape is None:
        return np.asarray(model.vertices, np.float64)
    s = np.asarray(shape, np.float64)
    if s.shape != (model.num_vertices, 3):
        raise ValueError(f"shape must have shape ({model.num_vertices}, 3), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("shape contains NaN or inf")
    return s
