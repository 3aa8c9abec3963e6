"""Which photo pixels may be projected onto the head: the face oval given by the 68 landmarks.

A selfie shows more than skin: hair, collars, scarves and background around the head.  Projecting
those onto the neck or scalp paints clothes onto the avatar, so only the face oval is taken from the
photo (the paper projects the selfie's face and fills every other area from the closest subject's
texture, section 3.5).  The oval is the jaw line (iBUG points 0-16) closed over the forehead by the
jaw line mirrored about the line through its two ends, scaled by ``forehead`` (0.6 reaches about
the hairline on adult faces).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["face_region_mask"]


def face_region_mask(landmarks, image_size, *, forehead: float = 0.6, shrink_px: float = 0.0) -> np.ndarray:
    """``(H, W) bool`` mask of the face oval.

    Args:
      landmarks: ``(68, 2)`` iBUG landmarks in pixels (x = column, y = row); NaN jaw points are skipped.
      image_size: ``(h, w)``.
      forehead: height of the upper half as a fraction of the lower half's depth.
      shrink_px: erode the mask by this many pixels (keeps away from the hair line and jaw edge).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {lm.shape}")
    h, w = (int(s) for s in image_size)
    jaw = lm[:17][np.all(np.isfinite(lm[:17]), axis=1)]
    if len(jaw) < 3:
        raise ValueError("need at least 3 finite jaw landmarks (iBUG 0-16) for the face region")
    a, b = jaw[0], jaw[-1]
    axis = (b - a) / max(np.linalg.norm(b - a), 1e-9)
    normal = np.array([axis[1], -axis[0]])
    # mirror the jaw's bulge (signed distance d from the a-b line) to the other side, scaled
    d = (jaw - a) @ normal
    upper = a + ((jaw - a) @ axis)[:, None] * axis - forehead * d[:, None] * normal
    poly = np.concatenate([jaw, upper[::-1]]) - 0.5  # pixel-corner convention -> OpenCV pixel centres
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 4).astype(np.int32)], 1, shift=2)
    if shrink_px > 0:
        k = 2 * int(round(shrink_px)) + 1
        mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    return mask.astype(bool)
