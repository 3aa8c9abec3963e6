"""Preview cameras: look-at and orbit extrinsics around a head (front, 45 degrees, profile) and a
helper that renders the standard preview views.

Extrinsics follow :mod:`digitaltwin_jax.camera`: ``p_cam = R p + t`` with the OpenCV camera frame
(x right, y down, z forward).  The head frame is ICT's (x to the subject's left, y up, +z out of the
face), so the frontal camera sits on +z; positive yaw moves the camera toward the subject's left
(+x), and ``yaw = 90`` is the left profile.
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax.camera import intrinsics_np
from digitaltwin_jax.render.renderer import render_mesh

__all__ = ["look_at", "orbit_camera", "preview_cameras", "render_previews", "PREVIEW_YAWS"]

PREVIEW_YAWS = (0.0, 45.0, 90.0)


def look_at(eye, target, up=(0.0, 1.0, 0.0)):
    """Extrinsics of a camera at ``eye`` looking at ``target``.

    Args:
      eye, target: ``(3,)`` positions in the world (head) frame.
      up: ``(3,)`` world direction that appears upward in the image (not parallel to the view).

    Returns:
      ``(R, t)``: ``(3, 3) float32`` rotation and ``(3,) float32`` translation, ``p_cam = R p + t``.
    """
    eye = np.asarray(eye, np.float64)
    target = np.asarray(target, np.float64)
    up = np.asarray(up, np.float64)
    z = target - eye
    nz = np.linalg.norm(z)
    if nz == 0 or not np.isfinite(nz):
        raise ValueError("eye and target must be distinct finite points")
    z /= nz
    x = np.cross(-up, z)
    nx = np.linalg.norm(x)
    if nx < 1e-9:
        raise ValueError("up is parallel to the viewing direction")
    x /= nx
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R.astype(np.float32), (-R @ eye).astype(np.float32)


def orbit_camera(yaw_deg: float, *, distance: float, target=(0.0, 0.0, 0.0), pitch_deg: float = 0.0):
    """Camera on a sphere of radius ``distance`` around ``target``, looking at it, head-frame y up.

    ``yaw = 0`` is frontal (camera on +z), ``yaw = 90`` the subject's left profile (camera on +x),
    positive ``pitch`` looks from above.  Returns ``(R, t)`` as :func:`look_at`.
    """
    a, e = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    direction = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
    return look_at(np.asarray(target, np.float64) + distance * direction, target)


def preview_cameras(vertices, image_size=(512, 512), *, yaws=PREVIEW_YAWS, fill: float = 0.85,
                    focal_scale: float = 1.0, pitch_deg: float = 0.0):
    """Cameras framing a mesh for previews.

    Args:
      vertices: ``(V, 3)`` head-frame positions.
      image_size: ``(h, w)``.
      yaws: view angles in degrees (front, 45 degrees, profile by default).
      fill: fraction of the shorter image side covered by the bounding sphere.
      focal_scale: the camera's f_s (see :func:`digitaltwin_jax.camera.intrinsics`).

    Returns:
      list of ``(K, R, t)`` (``(3, 3)``, ``(3, 3)``, ``(3,)`` float32), one per yaw.
    """
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(v - centre, axis=1).max())
    h, w = image_size
    K = intrinsics_np((h, w), focal_scale).astype(np.float32)  # numpy: no eagerly compiled JAX ops
    f = float(K[0, 0])
    # A sphere of radius r at distance d subtends a half-angle asin(r / d); fit it in fill * min(h, w).
    half = np.arctan(fill * min(h, w) / (2.0 * f))
    distance = radius / np.sin(half)
    return [(K,) + orbit_camera(y, distance=distance, target=centre, pitch_deg=pitch_deg) for y in yaws]


def render_previews(vertices, faces, image_size=(512, 512), *, yaws=PREVIEW_YAWS, supersample: int = 2,
                    background=(1.0, 1.0, 1.0), **render_kwargs):
    """Render a head-frame mesh from the preview cameras.

    Args:
      vertices: ``(V, 3)`` head-frame positions; faces: ``(F, 3)``.
      image_size: ``(h, w)`` of each view.
      yaws: view angles (degrees).
      supersample, background, **render_kwargs: passed to :func:`render_mesh` (``uvs``, ``uv_faces``,
        ``texture``, ``vertex_colors``, lighting).

    Returns:
      list of ``(h, w, 3) float32`` images in [0, 1], one per yaw.
    """
    v = np.asarray(vertices, np.float64)
    out = []
    for K, R, t in preview_cameras(v, image_size, yaws=yaws):
        img, _ = render_mesh(v @ R.T.astype(np.float64) + t, faces, K, image_size,
                             supersample=supersample, background=background, **render_kwargs)
        out.append(img)
    return out
