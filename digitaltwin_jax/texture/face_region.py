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

__all__ = ["face_region_mask", "hair_mask", "projection_mask"]


def _poly(p):
    """Corner-origin pixel coordinates -> OpenCV pixel-centre polygon with 2 fractional bits."""
    return np.round((np.asarray(p, np.float64) - 0.5) * 4).astype(np.int32)


def face_region_mask(landmarks, image_size, *, forehead: float = 0.6, shrink_px: float = 0.0,
                     exclude_mouth: bool = True, mouth_margin_px: float = 0.0) -> np.ndarray:
    """``(H, W) bool`` mask of the face oval.

    Args:
      landmarks: ``(68, 2)`` iBUG landmarks in pixels (x = column, y = row); NaN jaw points are skipped.
      image_size: ``(h, w)``.
      forehead: height of the upper half as a fraction of the lower half's depth.
      shrink_px: erode the mask by this many pixels (keeps away from the hair line and jaw edge).
      exclude_mouth: leave out the inner-mouth polygon (points 60-67, when all finite).
      mouth_margin_px: grow the inner-mouth polygon by this many pixels (teeth edges, bilinear reach).
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
    mouth = lm[60:68]
    if exclude_mouth and np.isfinite(mouth).all():
        hole = np.zeros((h, w), np.uint8)
        cv2.fillPoly(hole, [_poly(mouth)], 1, shift=2)
        cv2.polylines(hole, [_poly(mouth)], True, 1, thickness=1, shift=2)
        if mouth_margin_px > 0:
            k = 2 * int(round(mouth_margin_px)) + 1
            hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        mask[hole > 0] = 0
    return mask.astype(bool)


def hair_mask(image, landmarks, region, *, tolerance: float = 3.0, lightness_tolerance: float = 1.0,
              brow_margin: float = 0.08) -> np.ndarray:
    """``(H, W) bool`` hair pixels inside ``region`` above the brows (module docstring).

    Args:
      image: ``(H, W, 3)`` uint8 RGB photo.
      landmarks: ``(68, 2)`` iBUG landmarks (corner-origin pixels); brows 17-26, eyes, nose and
        mouth must be finite (otherwise nothing is marked).
      region: ``(H, W) bool`` the face region (:func:`face_region_mask`).
      tolerance: colour distance (robust standard deviations of the skin's L*, a*, b*) from which a
        pixel is not skin.  Only *darker* than the skin counts on L* (forehead highlights are skin;
        fair hair differs from skin in a*, b*).
      lightness_tolerance: scale of the tolerance on L* (1 = as a*, b*; on the example photo 2.5
        missed half the fringe, 1.0 found it without touching the forehead below it).
      brow_margin: pixels within this fraction of the outer-eye-corner distance above the brow line
        are never hair (the brows themselves).

    Returns:
      the hair pixels: not skin-coloured, above the brow line, connected to the top of the region.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {img.shape} {img.dtype}")
    region = np.asarray(region, bool)
    h, w = img.shape[:2]
    if region.shape != (h, w):
        raise ValueError(f"region must have shape {(h, w)}, got {region.shape}")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {lm.shape}")
    out = np.zeros((h, w), bool)
    need = np.r_[17:48, 48:68]
    if not np.isfinite(lm[need]).all() or not region.any():
        return out
    # skin reference: cheeks and nose between the lower eyelids and the upper lip
    ref = np.zeros((h, w), np.uint8)
    cheeks = np.concatenate([lm[[41, 40, 39]], lm[27:36], lm[[42, 47, 46]], lm[[54, 48]]])
    cv2.fillPoly(ref, [_poly(cv2.convexHull(cheeks.astype(np.float32)).reshape(-1, 2))], 1, shift=2)
    for eye in (lm[36:42], lm[42:48]):
        cv2.fillPoly(ref, [_poly(eye)], 0, shift=2)
    ref = (ref > 0) & region
    if ref.sum() < 30:
        return out
    # work in the region's bounding box (photos may be large)
    rows, cols = np.nonzero(region)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = (slice(r0, r1), slice(c0, c1))
    lab = cv2.cvtColor(np.ascontiguousarray(img[box]), cv2.COLOR_RGB2Lab).astype(np.float32)  # 8-bit Lab
    skin = lab[ref[box]]
    med = np.median(skin, axis=0)
    mad = 1.4826 * np.median(np.abs(skin - med), axis=0)
    scale = np.maximum(mad, 2.0) * np.array([lightness_tolerance, 1.0, 1.0], np.float32)
    z = (lab - med) / scale
    z[..., 0] = np.minimum(z[..., 0], 0.0)  # lighter than the skin: not a hair cue
    dist = np.sqrt((z * z).sum(axis=2))
    # above the brow line (least-squares line through 17-26, raised by the margin)
    brows = lm[17:27]
    slope, icpt = np.polyfit(brows[:, 0], brows[:, 1], 1)
    iod = float(np.linalg.norm(lm[45] - lm[36]))
    yy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    above = yy < slope * xx + icpt - brow_margin * iod
    reg = region[box]
    cand = (reg & above & (dist > tolerance)).astype(np.uint8)
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # keep what connects to the top of the region (hair comes down from the hairline)
    top = reg & ~np.pad(reg, ((1, 0), (0, 0)))[:-1]  # region pixels whose upper neighbour is not
    _, lab_cc = cv2.connectedComponents(cand, connectivity=8)
    keep = np.unique(lab_cc[top & (cand > 0)])
    keep = keep[keep > 0]
    if keep.size:
        hair = np.isin(lab_cc, keep).astype(np.uint8)
        hair = cv2.morphologyEx(hair, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
        out[box] = hair & reg & above
    return out


def projection_mask(image, landmarks, *, hair: bool = True, hair_margin_px: float = 4.0,
                    **region_kwargs) -> np.ndarray:
    """``(H, W) bool`` photo pixels the avatar's texture is projected from: :func:`face_region_mask`
    (inner mouth left out) minus :func:`hair_mask` grown by ``hair_margin_px`` when ``hair`` (the
    pixels at a strand's edge mix hair and skin; the band blend would carry their colour onto the
    forehead).

    Args:
      image: ``(H, W, 3)`` uint8 RGB photo; landmarks: ``(68, 2)`` iBUG landmarks in its pixels.
      region_kwargs: passed to :func:`face_region_mask`.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got {img.shape}")
    region = face_region_mask(landmarks, img.shape[:2], **region_kwargs)
    if hair:
        hm = hair_mask(img, landmarks, region).astype(np.uint8)
        if hair_margin_px > 0 and hm.any():
            k = 2 * int(round(hair_margin_px)) + 1
            hm = cv2.dilate(hm, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        region &= hm == 0
    return region
