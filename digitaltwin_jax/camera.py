"""Pinhole camera in OpenCV convention (paper section 3.4: extrinsic T = (q, t), intrinsic K(f_s)).

Camera frame: x right, y down, z forward (into the scene).  ``p_cam = R(q) p + t``.
Intrinsics ``K = [[f_s f, 0, c_x], [0, f_s f, c_y], [0, 0, 1]]`` with ``f = max(w, h)``,
``c_x = w / 2``, ``c_y = h / 2`` (the paper's text swaps h and w for the principal point; this is the
correct assignment).  Pixel coordinates: x = column, y = row, origin at the top-left pixel corner.

Note that the head frame (ICT: y up, +z out of the face) differs from the camera frame by a rotation
of pi about x for a frontal view; :func:`frontal_rotation` returns it.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.geometry.rotations import quaternion_to_matrix

__all__ = ["intrinsics", "intrinsics_np", "project", "project_pinhole", "transform", "frontal_rotation", "FRONTAL_QUATERNION", "epnp_pose"]

# Rotation by pi about the x axis, (w, x, y, z): maps head frame (y up, z toward viewer) to the
# OpenCV camera frame (y down, z away from the viewer).
FRONTAL_QUATERNION = np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32)


def frontal_rotation() -> np.ndarray:
    """``(3, 3)`` rotation that turns a head-frame face toward an OpenCV camera."""
    return np.diag([1.0, -1.0, -1.0]).astype(np.float32)


def intrinsics(image_size, focal_scale=1.0):
    """Camera matrix for an image of ``image_size = (h, w)`` pixels.

    Args:
      image_size: ``(h, w)`` in pixels.
      focal_scale: scalar f_s (the paper's focal scale factor, 1 at initialisation).

    Returns:
      ``(3, 3)`` K with ``f = f_s * max(h, w)`` and principal point ``(w / 2, h / 2)``.
    """
    h, w = image_size
    f = jnp.asarray(focal_scale) * float(max(h, w))
    z = jnp.zeros_like(f)
    o = jnp.ones_like(f)
    return jnp.stack(
        [jnp.stack([f, z, z + w / 2.0]), jnp.stack([z, f, z + h / 2.0]), jnp.stack([z, z, o])]
    )


def intrinsics_np(image_size, focal_scale=1.0) -> np.ndarray:
    """numpy :func:`intrinsics`, batched: ``(..., 3, 3) float64`` K for ``focal_scale`` of shape ``(...)``.

    The one numpy builder of K (EPnP, the fit's results, the synthetic scenes call it).
    """
    h, w = image_size
    f = np.asarray(focal_scale, np.float64) * float(max(h, w))
    K = np.zeros(f.shape + (3, 3))
    K[..., 0, 0] = K[..., 1, 1] = f
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = w / 2.0, h / 2.0, 1.0
    return K


def transform(points, q, t):
    """Rigid transform ``R(q) p + t`` of ``(..., 3)`` points (q ``(4,)`` wxyz, normalised inside)."""
    return jnp.asarray(points) @ quaternion_to_matrix(q).T + jnp.asarray(t)


def project(points_cam, K):
    """Perspective projection of camera-frame points ``(..., 3)`` to pixels ``(..., 2)``.

    No clamping of z: callers must keep points in front of the camera (z > 0).
    """
    p = jnp.asarray(points_cam)
    uvw = p @ jnp.asarray(K).T
    return uvw[..., :2] / uvw[..., 2:3]


def project_pinhole(points_cam, focal, principal_point):
    """:func:`project` with K given by its entries: pixels ``(..., 2)`` = ``f (x, y) / z + c``.

    Args:
      points_cam: ``(..., 3)`` camera-frame points (z > 0, not clamped).
      focal: scalar ``f`` in pixels (``f_s * max(h, w)`` for the paper's K); principal_point: ``(2,)``.

    The same as ``project(points_cam, K)`` for ``K = [[f, 0, c_x], [0, f, c_y], [0, 0, 1]]`` up to
    rounding, without building K (cheap with a traced focal inside the fit's solver).
    """
    p = jnp.asarray(points_cam)
    return focal * p[..., :2] / p[..., 2:3] + principal_point


def epnp_pose(object_points, image_points, image_size, focal_scale=1.0):
    """Initial extrinsics by EPnP (Lepetit et al., paper ref. [26]) through OpenCV ``solvePnP``.

    Args:
      object_points: ``(n, 3)`` points in the head frame (mm), n >= 4, not all collinear.
      image_points: ``(n, 2)`` their pixels (x = column, y = row); rows with NaN are dropped.
      image_size: ``(h, w)``; K as :func:`intrinsics` with ``focal_scale``; no lens distortion.

    Returns:
      ``(q, t)``: ``(4,) float64`` unit quaternion wxyz (w >= 0) and ``(3,) float64`` translation (mm)
      with ``p_cam = R(q) p + t``.

    Raises:
      ValueError: wrong shapes, fewer than 4 valid points, or no pose in front of the camera.
    """
    import cv2

    obj = np.asarray(object_points, dtype=np.float64)
    img = np.asarray(image_points, dtype=np.float64)
    if obj.ndim != 2 or obj.shape[1] != 3 or img.shape != (obj.shape[0], 2):
        raise ValueError(f"object_points must be (n, 3) and image_points (n, 2), got {obj.shape} and {img.shape}")
    ok = np.all(np.isfinite(obj), axis=1) & np.all(np.isfinite(img), axis=1)
    obj, img = obj[ok], img[ok]
    if obj.shape[0] < 4:
        raise ValueError(f"EPnP needs at least 4 valid point pairs, got {obj.shape[0]}")
    h, w = image_size
    K = intrinsics_np((h, w), float(focal_scale))
    good, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
    if not good or not np.all(np.isfinite(rvec)) or not np.all(np.isfinite(tvec)):
        raise ValueError("EPnP failed (degenerate point configuration)")
    R, _ = cv2.Rodrigues(rvec)
    t = tvec.reshape(3)
    if np.median(obj @ R[2] + t[2]) <= 0:
        raise ValueError("EPnP placed the points behind the camera (degenerate landmarks)")
    return _rotvec_to_quaternion(np.asarray(rvec, np.float64).reshape(3)), t.astype(np.float64)


def _rotvec_to_quaternion(rvec: np.ndarray) -> np.ndarray:
    """Unit quaternion wxyz (w >= 0) of an axis-angle vector (numpy float64)."""
    angle = float(np.linalg.norm(rvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    q = np.concatenate([[np.cos(angle / 2.0)], np.sin(angle / 2.0) * rvec / angle])
    return q * (1.0 if q[0] >= 0 else -1.0)
