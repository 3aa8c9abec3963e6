"""Skin pixels of a photo for the photometric energy (:mod:`digitaltwin_jax.energies.photometric`):
the face oval of :func:`digitaltwin_jax.texture.face_region.projection_mask` (inner mouth and, when
asked, hair left out) minus the eyes and the eyebrows, each grown by a margin (iBUG-68 landmarks:
brows 17-21 / 22-26, eyes 36-41 / 42-47, outer lips 48-59)."""
from __future__ import annotations

import cv2
import numpy as np

from digitaltwin_jax.texture.face_region import face_region_mask, projection_mask

__all__ = ["skin_mask"]

_PARTS = (range(17, 22), range(22, 27), range(36, 42), range(42, 48), range(48, 60))


def skin_mask(landmarks, image_size=None, *, image=None, margin_px: float = 3.0, shrink_px: float = 2.0,
              hair: bool = True) -> np.ndarray:
    """``(H, W) bool`` skin of the face: oval, no eyes, brows, lips or mouth (and no hair with ``image``).

    Args:
      landmarks: ``(68, 2)`` iBUG pixels (x = column, y = row).
      image_size: ``(h, w)``; or give ``image`` ``(H, W, 3) uint8`` (then hair is left out too when
        ``hair``).
      margin_px: how far the eyes, brows and lips are grown (px).
      shrink_px: erosion of the oval (keeps off the jaw silhouette and the hairline).
    """
    lm = np.asarray(landmarks, np.float64)
    if image is not None:
        img = np.asarray(image)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        mask = projection_mask(img, lm, hair=hair, shrink_px=shrink_px)
    elif image_size is not None:
        mask = face_region_mask(lm, image_size, shrink_px=shrink_px)
    else:
        raise ValueError("give image_size or image")
    hole = np.zeros(mask.shape, np.uint8)
    for part in _PARTS:
        p = lm[list(part)]
        p = p[np.all(np.isfinite(p), axis=1)]
        if len(p) >= 3:
            hull = cv2.convexHull(np.round((p - 0.5) * 4).astype(np.int32))
            cv2.fillConvexPoly(hole, hull, 1, shift=2)
    if margin_px > 0:
        k = 2 * int(round(margin_px)) + 1
        hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mask & (hole == 0)
