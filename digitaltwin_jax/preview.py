"""The avatar's ``preview.png``: the photo, three views of the textured head and the fitted overlay.

Drawn with the rasteriser (:mod:`digitaltwin_jax.render`) from an :class:`~digitaltwin_jax.pipeline.Avatar`;
no maths of its own.
"""
from __future__ import annotations

import numpy as np

__all__ = ["preview_image"]


def preview_image(avatar, photo: np.ndarray, size: int = 256) -> np.ndarray:
    """``(size, 5 * size, 3) uint8`` for an ``Avatar`` and its ``(H, W, 3) uint8`` photo: photo | front | 45 degrees | profile | overlay through the fitted camera."""
    import cv2

    from digitaltwin_jax.render import render_mesh, render_previews

    def fit_panel(img):
        h, w = img.shape[:2]
        s = size / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        panel = np.full((size, size, 3), 255, np.uint8)
        y0, x0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
        panel[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        return panel

    # a panel shows the head in about `size` pixels: a map of 2 x size texels is still finer than that
    # (and INTER_AREA filters it), while converting all 2048^2 texels to float cost more than drawing
    tex8 = np.asarray(avatar.texture)
    side = min(tex8.shape[0], 2 * size)
    if side != tex8.shape[0]:
        tex8 = cv2.resize(tex8, (side, side), interpolation=cv2.INTER_AREA)
    tex = tex8.astype(np.float32) / 255.0
    verts, faces, uvs, uv_faces = avatar.vertices, avatar.faces, avatar.uvs, avatar.uv_faces
    if avatar.eyes is not None:  # one mesh, one atlas: the head's map with the eye map beside it
        from digitaltwin_jax.texture.eyes import preview_mesh

        verts, faces, uvs, uv_faces, tex = preview_mesh(verts, faces, uvs, uv_faces, tex, avatar.eyes)
    views = render_previews(verts, faces, (size, size), uvs=uvs, uv_faces=uv_faces, texture=tex)
    # the overlay is drawn at the panel's resolution: the photo shrunk to fit and the camera scaled
    # with it (x' = x w'/w, y' = y h'/h in pixel coordinates with corners at integers)
    h, w = avatar.image_size
    K = np.asarray(avatar.K, np.float64)
    if max(h, w) > size:
        hs, ws = max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))
        photo = cv2.resize(np.asarray(photo), (ws, hs), interpolation=cv2.INTER_AREA)
        K = np.diag([ws / w, hs / h, 1.0]) @ K
        h, w = hs, ws
    photo_f = photo.astype(np.float32) / 255.0
    overlay, mask = render_mesh(avatar.vertices_camera, avatar.faces, K, (h, w), background=photo_f)
    blend = np.where(np.asarray(mask, bool)[..., None], 0.55 * overlay + 0.45 * photo_f, photo_f)
    to8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    panels = [fit_panel(photo)] + [to8(v) for v in views] + [fit_panel(to8(blend))]
    return np.concatenate(panels, axis=1)
