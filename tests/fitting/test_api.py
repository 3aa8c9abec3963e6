"""fit_stepper (digitaltwin_jax/fitting/api.py): one face's fit run step by step, checked against a
known pose, an independent OpenCV projection and the one-call fit()."""
import cv2
import numpy as np
import pytest

from digitaltwin_jax import fitting as F
from digitaltwin_jax.model.head_model import asset_path, load_head_model

pytestmark = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")

HW = (480, 640)


def _quat_to_matrix(q):
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


@pytest.fixture(scope="module")
def face():
    """The mean head under a known pose and focal, its 68 landmarks projected by OpenCV."""
    model = load_head_model("low")
    yaw = np.deg2rad(20.0)
    R = np.diag([1.0, -1.0, -1.0]) @ np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    f = 1.2 * max(HW)
    t = np.array([10.0, -5.0, f * 160.0 / (0.4 * HW[0])])
    K = np.array([[f, 0, HW[1] / 2], [0, f, HW[0] / 2], [0, 0, 1]])
    pts = np.asarray(model.vertices, np.float64)[np.asarray(model.landmark_indices)]
    lm = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], t, K, None)[0].reshape(-1, 2)
    return model, lm, R


def test_stepping_recovers_the_pose_and_matches_fit(face):
    model, lm, R = face
    stepper = F.fit_stepper(model, lm, HW)
    state = stepper.init()
    while not stepper.terminate(state):
        state = stepper.step(state)
        i = int(state.iteration) - 1
        # a step never increases E (measured after the step's re-linearisation)
        assert float(state.energy) <= float(state.energies[i]), (i, float(state.energy), float(state.energies[i]))
    assert int(state.iteration) == stepper.num_iterations == F.FitConfig().num_iterations
    res = stepper.result(state)
    # the known pose: rotation within 3 degrees (the jaw points slide along the contour; the rotation prior
    # pulls toward the EPnP start; tests/test_fitting.py allows 2 degrees mean over noisy faces)
    err = np.rad2deg(np.linalg.norm(cv2.Rodrigues(_quat_to_matrix(res.params.q) @ R.T)[0]))
    assert err < 3.0, err
    # the result's projected landmarks are an OpenCV projection of its own landmark samples
    pts = np.einsum("lk,lkc->lc", res.landmark_weights.astype(np.float64),
                    res.vertices.astype(np.float64)[res.landmark_indices])
    px = cv2.projectPoints(pts, cv2.Rodrigues(_quat_to_matrix(res.params.q))[0], res.params.t.astype(np.float64),
                           res.intrinsics.astype(np.float64), None)[0].reshape(-1, 2)
    np.testing.assert_allclose(res.landmarks_2d, px, atol=2e-3)
    # the stepped solve is fit()'s solve
    ref = F.fit(model, lm, HW)
    np.testing.assert_allclose(res.vertices, ref.vertices, atol=1e-3)
    np.testing.assert_allclose(res.energy, ref.energy, rtol=1e-5)
    np.testing.assert_allclose(res.reprojection_errors, ref.reprojection_errors, atol=1e-3)


def test_a_stopping_rule_of_ones_own(face):
    model, lm, _ = face
    stepper = F.fit_stepper(model, lm, HW, config=F.FitConfig(num_iterations=30))
    state = stepper.init()
    prev = np.inf
    while not stepper.terminate(state):
        state = stepper.step(state)
        e = float(state.energy)
        if prev - e <= 1e-4 * e:  # stop when a step gains less than 0.01 %
            break
        prev = e
    n = int(state.iteration)
    assert 1 < n < 30
    res = stepper.result(state)
    assert res.energy.shape == (31,)
    assert np.all(np.isfinite(res.energy[: n + 1])) and np.all(np.isnan(res.energy[n + 1:]))
    assert res.success


def test_stepper_rejects_what_fit_rejects(face):
    model, lm, _ = face
    with pytest.raises(ValueError, match="landmarks"):
        F.fit_stepper(model, lm[:10], HW)
