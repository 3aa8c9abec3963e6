"""preview.preview_image: five panels; the overlay drawn at panel resolution lands where the fitted
camera puts the mesh (reference: the vertices projected with numpy and filled by OpenCV)."""
import cv2
import numpy as np

from digitaltwin_jax.pipeline import Avatar
from digitaltwin_jax.preview import preview_image


def _avatar(h, w, tex_side=64):
    # two triangles facing the camera (OpenCV frame: z forward), 400 mm away
    v = np.array([[-90.0, -60, 400], [75, -45, 400], [60, 75, 400], [-75, 68, 400]], np.float32)
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    K = np.array([[500.0, 0, w * 0.45], [0, 520.0, h * 0.55], [0, 0, 1]])
    uvs = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    return Avatar(
        vertices=v, neutral_vertices=v, faces=faces, uvs=uvs, uv_faces=faces, expression_names=("jawOpen",),
        expression_weights=np.zeros(1, np.float32), expression_basis=np.zeros((1, 4, 3), np.float32),
        texture=np.full((tex_side, tex_side, 3), 180, np.uint8), texture_confidence=np.ones((tex_side, tex_side), np.float32),
        K=K, rotation=np.eye(3), translation=np.zeros(3), landmarks_2d=np.zeros((68, 2)), landmarks_3d=np.zeros((68, 3)),
        landmark_errors_px=np.zeros(68), image_size=(h, w), timings={}, info={},
    )


def test_overlay_at_panel_resolution_lands_where_the_camera_projects():
    h, w, size = 400, 600, 100
    av = _avatar(h, w)
    photo = np.zeros((h, w, 3), np.uint8)  # black: the overlay is the only non-black content
    img = preview_image(av, photo, size)
    assert img.shape == (size, 5 * size, 3) and img.dtype == np.uint8
    panel = img[:, 4 * size:]
    hs, ws = round(h * size / w), size
    y0 = (size - hs) // 2
    drawn = panel[y0:y0 + hs].max(axis=2) > 10
    # reference: numpy projection, scaled to the panel, filled by OpenCV (8 bits of sub-pixel precision)
    p = (av.K @ av.vertices.T.astype(np.float64)).T
    xy = p[:, :2] / p[:, 2:3] * np.array([ws / w, hs / h])
    ref = np.zeros((hs, ws), np.uint8)
    cv2.fillPoly(ref, [np.round((xy[[0, 1, 2, 3]] - 0.5) * 256).astype(np.int32)], 1, shift=8)
    ref = ref.astype(bool)
    iou = (drawn & ref).sum() / (drawn | ref).sum()
    assert ref.sum() > 500 and iou > 0.9, iou
    # the bars around the shrunk photo are the panel's white
    assert (panel[: y0] == 255).all() and (panel[y0 + hs:] == 255).all()


def test_a_small_photo_is_not_enlarged_and_big_maps_are_shrunk_for_the_views():
    av = _avatar(80, 90, tex_side=2048)
    img = preview_image(av, np.zeros((80, 90, 3), np.uint8), 128)
    assert img.shape == (128, 640, 3)
    # the textured views sample a map of 180 grey: any shading keeps them within the map's range
    views = img[:, 128:512]
    assert views.max() <= 255 and (views < 255).any()
