"""Similarity-warped face chips with anti-aliasing (the crops of the paper's coarse-to-fine landmarks, 3.4).

A chip is a square ``(size, size, 3) uint8`` image in which the input is rotated by ``-angle`` about
``center`` and scaled by ``scale``; :func:`similarity_chip` also returns the ``(2, 3)`` affine map
``A`` from input pixels to chip pixels (corner convention on both sides, see ``landmarks68``):

    chip_xy = scale * R(-angle) @ (xy - center) + size / 2

When the chip is smaller than its footprint (scale < 1) the footprint is first area-averaged
(``cv2.INTER_AREA``) so that large photos do not alias; only the footprint is touched, so the cost does
not grow with the photo.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["similarity_chip", "apply_affine", "invert_affine"]


def similarity_chip(image: np.ndarray, center, scale: float, angle: float, size: int, border: int = cv2.BORDER_REPLICATE):
    """Cut a rotated, scaled square chip.

    Args:
      image: ``(H, W, C)`` or ``(H, W)`` uint8.
      center: ``(2,)`` point (x, y) of the input that lands on the chip centre.
      scale: chip pixels per input pixel (> 0).
      angle: radians; a direction at this angle in the input (measured from +x toward +y, i.e.
        clockwise on screen) becomes horizontal in the chip.
      size: chip side in pixels.
      border: OpenCV border mode outside the image: ``cv2.BORDER_REPLICATE`` (default, repeats the
        edge) or ``cv2.BORDER_CONSTANT`` (black, MediaPipe's letterbox).

    Returns:
      ``(chip, A)``: ``chip`` ``(size, size, C)`` uint8 and
      ``A`` ``(2, 3)`` float64 with ``chip_xy = A[:, :2] @ xy + A[:, 2]``.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite; got {scale}")
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1; got {size}")
    cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64).reshape(2))
    c, s = np.cos(angle), np.sin(angle)
    R = scale * np.array([[c, s], [-s, c]])  # scale * R(-angle)
    A = np.zeros((2, 3))
    A[:, :2] = R
    A[:, 2] = size / 2.0 - R @ np.array([cx, cy])

    # Footprint of the chip in the input, plus a margin for the interpolation kernel.
    h, w = image.shape[:2]
    r = size / (2.0 * scale) * np.sqrt(2.0) + 2.0 / min(scale, 1.0) + 2.0
    x0, x1 = int(np.clip(np.floor(cx - r), 0, w - 1)), int(np.clip(np.ceil(cx + r), 1, w))
    y0, y1 = int(np.clip(np.floor(cy - r), 0, h - 1)), int(np.clip(np.ceil(cy + r), 1, h))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    roi = image[y0:y1, x0:x1]
    # M maps roi pixels to chip pixels: shift by the roi origin first.
    M = A.copy()
    M[:, 2] = A[:, 2] + A[:, :2] @ np.array([x0, y0], dtype=np.float64)
    if scale < 1.0:
        rw, rh = roi.shape[1], roi.shape[0]
        nw, nh = max(1, int(round(rw * scale))), max(1, int(round(rh * scale)))
        roi = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh  # exact resize factors in the corner convention
        M[:, 0] /= fx
        M[:, 1] /= fy
    # OpenCV samples pixel centres at integer coordinates: convert the corner-convention affine.
    Mc = M.copy()
    Mc[:, 2] += 0.5 * M[:, :2].sum(axis=1) - 0.5
    chip = cv2.warpAffine(
        np.ascontiguousarray(roi), Mc, (size, size), flags=cv2.INTER_LINEAR, borderMode=border
    )
    if chip.ndim == 2 and image.ndim == 3:
        chip = chip[:, :, None]
    return chip, A


def apply_affine(A: np.ndarray, points) -> np.ndarray:
    """``(..., 2)`` points mapped by a ``(2, 3)`` affine: ``A[:, :2] @ p + A[:, 2]``."""
    p = np.asarray(points, dtype=np.float64)
    return p @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine map."""
    Li = np.linalg.inv(A[:, :2])
    return np.concatenate([Li, -(Li @ A[:, 2])[:, None]], axis=1)
