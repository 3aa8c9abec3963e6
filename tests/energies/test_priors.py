"""Tests of the regularisers E_r (eq. 3)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax.energies import priors
from digitaltwin_jax.geometry.rotations import quaternion_angle


def _axis_angle_quat(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.r_[np.cos(angle / 2), np.sin(angle / 2) * axis]


def test_expression_and_focal_and_identity_values():
    beta = np.array([0.0, 0.3, 1.0])
    np.testing.assert_allclose(np.asarray(priors.expression_prior_residual(beta, 0.5)), beta / 0.5)
    np.testing.assert_allclose(np.asarray(priors.expression_prior_residual(beta, np.array([1, 2, 4.0]))), beta / [1, 2, 4])
    assert float(priors.focal_prior_residual(1.0)[0]) == 0.0
    # log^2 is symmetric in scale: f_s = 2 and f_s = 1/2 cost the same
    assert float(priors.focal_prior_residual(2.0)[0] ** 2) == pytest.approx(float(priors.focal_prior_residual(0.5)[0] ** 2))
    np.testing.assert_allclose(np.asarray(priors.identity_prior_residual(beta)), beta)


@pytest.mark.parametrize("angle", [0.0, 0.1, 1.0, 3.0])
def test_rotation_prior_is_half_angle_sine_of_relative_rotation(angle):
    rng = np.random.default_rng(int(angle * 10))
    q0 = _axis_angle_quat(rng.normal(size=3), 0.7)
    rel = _axis_angle_quat(rng.normal(size=3), angle)
    # q = q0 * rel (Hamilton product written out)
    w0, v0 = q0[0], q0[1:]
    w1, v1 = rel[0], rel[1:]
    q = np.r_[w0 * w1 - v0 @ v1, w0 * v1 + w1 * v0 + np.cross(v0, v1)]
    r = np.asarray(priors.rotation_prior_residual(q * 2.5, q0))  # scale of q is irrelevant
    assert np.linalg.norm(r) == pytest.approx(np.sin(angle / 2), abs=1e-6)
    assert 2 * np.arcsin(min(np.linalg.norm(r), 1.0)) == pytest.approx(float(quaternion_angle(q, q0)), abs=1e-3)
    np.testing.assert_allclose(np.asarray(priors.rotation_prior_residual(-q, q0)), r, atol=1e-6)  # q ~ -q


def test_quaternion_norm_residual():
    assert float(priors.quaternion_norm_residual(np.array([1.0, 0, 0, 0]))[0]) == 0.0
    assert float(priors.quaternion_norm_residual(np.array([2.0, 0, 0, 0]))[0]) == pytest.approx(3.0)


def test_priors_gradients():
    with jax.enable_x64(True):
        q0 = jnp.asarray(_axis_angle_quat([1, 2, 3], 0.4))
        q = jnp.asarray(_axis_angle_quat([0, 1, 0], 0.5))
        check_grads(lambda q: priors.rotation_prior_residual(q, q0), (q,), order=1, modes=("fwd",))
        check_grads(priors.focal_prior_residual, (jnp.asarray(1.3),), order=1, modes=("fwd",))
        check_grads(priors.quaternion_norm_residual, (q,), order=1, modes=("fwd",))
