"""Axis-angle exp / log (supplementary eq. 6) against scipy, with finite gradients at 0 and near pi."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads
from scipy.spatial.transform import Rotation

from digitaltwin_jax.geometry import axis_angle_to_matrix, axis_angle_to_quaternion, hat, matrix_to_axis_angle
from digitaltwin_jax.geometry import _mat3 as m3


def test_exp_log_match_scipy():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(12, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-9, 1e-5, 5e-3, 0.02, 0.5, 1.5, 2.5, 3.0, np.pi - 1e-5, np.pi - 1e-3, 2.0])
    v = axes * angles[:, None]
    with jax.enable_x64(True):
        r = np.asarray(jax.jit(axis_angle_to_matrix)(jnp.asarray(v)))
        back = np.asarray(jax.jit(matrix_to_axis_angle)(jnp.asarray(Rotation.from_rotvec(v).as_matrix())))
        q = np.asarray(axis_angle_to_quaternion(jnp.asarray(v)))
        # components-first kernels used by the DR code agree
        r_cf = np.asarray(jax.jit(m3.exp_so3)(jnp.asarray(v.T)))
        log_cf = np.asarray(jax.jit(m3.log_so3)(jnp.asarray(Rotation.from_rotvec(v).as_matrix().transpose(1, 2, 0))))
    np.testing.assert_allclose(r, Rotation.from_rotvec(v).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(np.moveaxis(r_cf, -1, 0), r, atol=1e-12)
    np.testing.assert_allclose(back, v, atol=1e-9)
    np.testing.assert_allclose(log_cf.T, v, atol=1e-9)
    q_ref = Rotation.from_rotvec(v).as_quat()[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(np.abs(np.sum(q * q_ref, axis=1)), 1.0, atol=1e-12)
    x = rng.normal(size=3)
    np.testing.assert_allclose(np.asarray(hat(jnp.asarray(v[5]))) @ x, np.cross(v[5], x), atol=1e-12)


def test_exp_beyond_pi():
    v = np.array([0.0, 0.0, 2 * np.pi + 0.3])
    with jax.enable_x64(True):
        r = np.asarray(axis_angle_to_matrix(jnp.asarray(v)))
    np.testing.assert_allclose(r, Rotation.from_rotvec([0, 0, 0.3]).as_matrix(), atol=1e-12)


def test_gradients_finite_at_zero_and_near_pi():
    with jax.enable_x64(True):
        roundtrip = jax.jit(lambda x: matrix_to_axis_angle(axis_angle_to_matrix(x)))
        jac = jax.jit(jax.jacrev(roundtrip))
        for v in ([0.0, 0.0, 0.0], [1e-8, -2e-8, 0.0], [0.0, np.pi - 1e-6, 0.0], [0.4, 0.2, -0.1]):
            j = np.asarray(jac(jnp.asarray(v)))
            assert np.isfinite(j).all()
            np.testing.assert_allclose(j, np.eye(3), atol=1e-6)  # log(exp(v)) = v inside the ball of radius pi
        check_grads(roundtrip, (jnp.asarray([0.3, -1.2, 2.0]),), order=1, modes=("rev",))


def test_numpy_quaternion_to_matrix_matches_scipy():
    from digitaltwin_jax.geometry.rotations import quaternion_to_matrix_np

    q = np.random.default_rng(3).normal(size=(20, 4)) * 3.0  # not normalised
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy: (x, y, z, w)
    np.testing.assert_allclose(quaternion_to_matrix_np(q), ref, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix_np(q[0]), ref[0], atol=1e-12)
