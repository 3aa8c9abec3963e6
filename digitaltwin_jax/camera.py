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

__all__ = ["intrinsics", "project", "transform", "frontal_rotation", "FRONTAL_QUATERNION"]

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
