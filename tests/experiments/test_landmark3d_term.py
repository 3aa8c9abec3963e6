"""experiments/landmark3d_term.py: a user term with per-face data in fit_batch (issue 15 item 2 (i))."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from digitaltwin_jax import fitting as F
from digitaltwin_jax.model.head_model import asset_path, load_head_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import load  # noqa: E402

X = load("landmark3d_term")
needs_low = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")


class _CompileCounter:
    """Counts XLA backend compilations (jax.monitoring events) while active."""

    def __init__(self):
        self.count = 0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, name, duration, **kwargs):
        if self.active and name == "/jax/core/compile/backend_compile_duration":
            self.count += 1


def _quat_matrix(q):
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@needs_low
def test_3d_term_in_fit_batch_recovers_truth_and_does_not_recompile():
    model = load_head_model("low")
    counter = _CompileCounter()
    first = X.synthetic_faces(model, 8, seed=0)
    counter.active = True
    res = X.fit_with_3d(model, first)
    counter.active = False
    assert counter.count > 0  # the counter sees compilations (the first call compiles the solve)
    counter.count = 0
    assert res.success.all()
    # the 3D term's energy is reported under its name and equals the numpy residual of the result
    pts = np.sum(res.vertices[np.arange(8)[:, None, None], res.landmark_indices] * res.landmark_weights[..., None], axis=2)
    cam = np.stack([pts[i] @ _quat_matrix(res.params.q[i]).T + res.params.t[i] for i in range(8)])
    e_ref = np.sum(((cam - first["points"]) * first["mask"][..., None]) ** 2, axis=(1, 2))
    np.testing.assert_allclose(res.energy_terms["landmarks3d"], e_ref, rtol=2e-3)
    # ground truth: 0.5 mm noise on 51 points fixes the distance (2D alone leaves it to the focal prior)
    assert np.abs(res.params.t[:, 2] - first["t"][:, 2]).max() < 2.0
    assert np.abs(res.params.f_s / first["f_s"] - 1).max() < 0.01
    # new faces, new targets, same shapes: nothing is compiled again
    second = X.synthetic_faces(model, 8, seed=1)
    counter.active = True
    res2 = X.fit_with_3d(model, second)
    counter.active = False
    assert counter.count == 0, f"{counter.count} compilations on the second call"
    assert np.abs(res2.params.t[:, 2] - second["t"][:, 2]).max() < 2.0
    assert not np.allclose(res2.params.t, res.params.t)


def test_per_face_data_needs_the_batch_axis():
    model = None  # the check runs before the model is used
    term = X.landmark3d_term(np.zeros((3, 68, 3)), np.ones((3, 68)))
    from digitaltwin_jax.fitting.problem import _term_inputs

    with pytest.raises(ValueError, match="landmarks3d.*leading batch axis of 2"):
        _term_inputs((term,), 2)
    face, shared = _term_inputs((term,), 3)
    assert set(face) == {"landmarks3d"} and shared == {}
    del model
