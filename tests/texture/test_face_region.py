"""Face region for projection: the oval, the inner-mouth hole and hair on the forehead, on synthetic
faces whose regions are known."""
import numpy as np
import pytest

from digitaltwin_jax.texture.face_region import face_region_mask, hair_mask


def _face_landmarks():
    """68 iBUG points of a schematic frontal face in a 200 x 200 image (corner-origin pixels)."""
    lm = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    lm[0:17] = np.stack([100 + 60 * np.cos(t), 100 + 70 * np.sin(t)], 1)  # jaw, ends at y = 100
    lm[17:27] = np.stack([np.r_[np.linspace(55, 90, 5), np.linspace(110, 145, 5)], np.full(10, 85.0)], 1)
    lm[27:31] = np.stack([np.full(4, 100.0), np.linspace(95, 120, 4)], 1)
    lm[31:36] = np.stack([np.linspace(90, 110, 5), np.full(5, 123.0)], 1)
    a6 = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([10 * np.cos(a6 + np.pi), 4 * np.sin(a6 + np.pi)], 1)
    lm[36:42] = eye + (75, 96)
    lm[42:48] = eye + (125, 96)
    a12 = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.stack([100 - 22 * np.cos(a12), 142 - 8 * np.sin(a12)], 1)
    a8 = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.stack([100 - 15 * np.cos(a8), 142 - 4 * np.sin(a8)], 1)
    return lm


def _poly_area(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_inner_mouth_is_left_out_of_the_face_region():
    lm = _face_landmarks()
    full = face_region_mask(lm, (200, 200), exclude_mouth=False)
    cut = face_region_mask(lm, (200, 200), mouth_margin_px=0.0)
    hole = full & ~cut
    assert not (cut & ~full).any()
    area = _poly_area(lm[60:68])  # 169.7 px; the outline itself (1 px) is also left out
    perimeter = np.sum(np.linalg.norm(np.diff(np.r_[lm[60:68], lm[60:61]], axis=0), axis=1))
    assert area <= hole.sum() <= area + perimeter + 4
    assert not cut[141, 99] and cut[130, 99] and cut[152, 99]  # mouth centre out, above / below in
    grown = face_region_mask(lm, (200, 200), mouth_margin_px=2.0)
    assert (full & ~grown).sum() > hole.sum() + perimeter  # a ring of about 2 px more
    # missing mouth points: no hole, the rest still works
    lm[62] = np.nan
    assert face_region_mask(lm, (200, 200)).sum() == full.sum()
    with pytest.raises(ValueError, match="finite"):
        face_region_mask(np.full((68, 2), np.nan), (200, 200))


def _skin_photo(hair=True, highlight=True):
    yy, xx = np.mgrid[0:200, 0:200] + 0.5
    shade = (0.85 + 0.25 * xx / 200)[..., None]  # light from the right: forehead / cheeks vary 25%
    img = np.array([0.80, 0.60, 0.50]) * shade
    if highlight:
        img[(yy - 75) ** 2 + (xx - 100) ** 2 < 16] = (0.97, 0.90, 0.86)  # a specular spot on the forehead
    band = yy < 70 + 4 * np.sin(xx / 9.0)  # a fringe with a wavy lower edge
    if hair:
        img[band] = (0.30, 0.22, 0.14)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), band


def test_hair_on_the_forehead_is_found_and_skin_is_not():
    lm = _face_landmarks()
    region = face_region_mask(lm, (200, 200))
    img, band = _skin_photo()
    hair = hair_mask(img, lm, region)
    truth = band & region
    assert truth.sum() > 300
    iou = (hair & truth).sum() / (hair | truth).sum()
    assert iou > 0.9
    assert not (hair & ~band).any()  # the lit forehead, its highlight and the shaded side stay skin
    # no hair: nothing
    img2, _ = _skin_photo(hair=False)
    assert not hair_mask(img2, lm, region).any()


def test_hair_mask_validation_and_missing_landmarks():
    lm = _face_landmarks()
    region = face_region_mask(lm, (200, 200))
    img, _ = _skin_photo()
    with pytest.raises(ValueError):
        hair_mask(img.astype(np.float32), lm, region)
    with pytest.raises(ValueError):
        hair_mask(img, lm, region[:10])
    lm[20] = np.nan  # no brow line: nothing is marked
    assert not hair_mask(img, lm, region).any()


def test_projection_mask_is_the_region_without_mouth_and_grown_hair():
    from digitaltwin_jax.texture.face_region import projection_mask

    lm = _face_landmarks()
    img, band = _skin_photo()
    region = face_region_mask(lm, (200, 200))
    m0 = projection_mask(img, lm, hair=False)
    np.testing.assert_array_equal(m0, region)
    m = projection_mask(img, lm, hair_margin_px=3.0)
    assert not (m & band).any() and not (m & ~region).any()
    # the margin (3 px, up to 1 px of detection error): nothing kept within 2 px of the true hair,
    # the skin beyond 5 px kept
    import cv2

    d = cv2.distanceTransform((~(band & region)).astype(np.uint8), cv2.DIST_L2, 5)
    assert not (m & (d <= 2.0)).any()
    assert m[(d > 5.0) & region].all()
    assert (m & (d <= 5.0)).sum() < (region & (d > 2.0) & (d <= 5.0)).sum()  # the ring is mostly gone
    with pytest.raises(ValueError):
        projection_mask(img[..., 0], lm)
