"""camera.py is the one home of K and projection: the landmark energy's projection agrees with
``project(transform(p), intrinsics(...))`` and with OpenCV."""
import cv2
import jax
import numpy as np

from digitaltwin_jax.camera import intrinsics, project, project_pinhole, transform
from digitaltwin_jax.energies.landmarks import project_points
from digitaltwin_jax.geometry.rotations import quaternion_to_matrix


def test_project_pinhole_equals_project_with_k():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        p = rng.uniform(-50, 50, (10, 3)) + [0.0, 0.0, 600.0]
        K = np.asarray(intrinsics((480, 640), 1.3))
        np.testing.assert_allclose(project_pinhole(p, K[0, 0], K[:2, 2]), project(p, K), rtol=1e-12)


def test_landmark_projection_matches_camera_and_opencv():
    rng = np.random.default_rng(1)
    h, w, fs = 480, 640, 0.9
    with jax.enable_x64(True):
        q = rng.standard_normal(4)
        t = np.array([5.0, -3.0, 700.0])
        p = rng.uniform(-80, 80, (20, 3))
        ours = np.asarray(project_points(p, q, t, fs, float(max(h, w)), np.array([w / 2.0, h / 2.0])))
        K = np.asarray(intrinsics((h, w), fs))
        np.testing.assert_allclose(ours, project(transform(p, q, t), K), rtol=1e-12)
        R = np.asarray(quaternion_to_matrix(q / np.linalg.norm(q)))
    cv = cv2.projectPoints(p, cv2.Rodrigues(R)[0], t, K, None)[0].reshape(-1, 2)
    np.testing.assert_allclose(ours, cv, atol=1e-6)


def test_intrinsics_np_batched_matches_closed_form_and_jax():
    from digitaltwin_jax.camera import intrinsics, intrinsics_np

    fs = np.array([[0.5, 1.0, 2.0]])
    K = intrinsics_np((480, 640), fs)
    assert K.shape == (1, 3, 3, 3) and K.dtype == np.float64
    for i, s in enumerate(fs[0]):
        np.testing.assert_array_equal(K[0, i], [[640 * s, 0, 320], [0, 640 * s, 240], [0, 0, 1]])
        np.testing.assert_allclose(K[0, i], np.asarray(intrinsics((480, 640), s)), rtol=1e-6)
