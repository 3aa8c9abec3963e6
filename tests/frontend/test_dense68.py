"""frontend.dense68: the 68 points from the 468 mesh points (issue 28).  Checked against exact geometry
(similarity equivariance), a planted mapping that the fit must recover, and the shipped file's record."""
from __future__ import annotations

import numpy as np
import pytest

from digitaltwin_jax.frontend.dense68 import Dense68, fit_dense68, yaw_feature


def _similarity(p, s, angle, t):
    c, si = np.cos(angle), np.sin(angle)
    return s * p @ np.array([[c, si], [-si, c]]) + t


@pytest.fixture(scope="module")
def shipped():
    return Dense68.load()


def _face(rng, yaw=0.0):
    """A plausible mesh: the canonical-ish layout is not needed, any point cloud with eyes apart."""
    p = rng.normal(0, 30, (468, 2))
    p[33], p[263] = (-30.0, 0.0), (30.0, 0.0)
    p[1] = (yaw * 60.0, 20.0)
    return p + 200.0


def test_shipped_mapping_is_well_formed(shipped):
    assert shipped.idx.shape[0] == 68 and shipped.idx.shape[1] >= 4
    np.testing.assert_allclose(shipped.a.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(shipped.b.sum(1), 0.0, atol=1e-9)


def test_mapping_commutes_with_similarity_transforms(shipped):
    rng = np.random.default_rng(0)
    p = _face(rng, yaw=0.1)
    q = _similarity(p, 1.7, 0.4, np.array([-30.0, 55.0]))
    assert yaw_feature(q) == pytest.approx(yaw_feature(p))
    np.testing.assert_allclose(shipped(q), _similarity(shipped(p), 1.7, 0.4, np.array([-30.0, 55.0])), atol=1e-3)


def test_batches_and_bad_input(shipped):
    rng = np.random.default_rng(1)
    batch = np.stack([_face(rng), _face(rng, 0.2)])
    out = shipped(batch)
    assert out.shape == (2, 68, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], shipped(batch[1]))
    with pytest.raises(ValueError, match="468"):
        shipped(np.zeros((68, 2)))
    with pytest.raises(ValueError, match="NaN"):
        shipped(np.full((468, 2), np.nan))
    with pytest.raises(ValueError, match="sum to 1"):
        Dense68(shipped.idx, shipped.a * 2, shipped.b)


def test_fit_recovers_a_planted_mapping():
    rng = np.random.default_rng(2)
    k = 4
    # planted: each iBUG point j is a fixed affine combination of mesh points 4j..4j+3, varying with yaw
    idx = np.arange(68 * k).reshape(68, k)
    a = rng.dirichlet(np.ones(k), 68)
    b = rng.normal(0, 0.3, (68, k))
    b -= b.mean(1, keepdims=True)
    planted = Dense68(idx, a, b)
    base = rng.normal(0, 40, (468, 2))
    dense = []
    for n in range(300):
        p = base + rng.normal(0, 4, base.shape)
        p[33], p[263], p[1] = (-40, 0), (40, 0), (rng.uniform(-0.4, 0.4) * 80, 30)
        dense.append(_similarity(p, rng.uniform(0.5, 2), rng.uniform(-0.5, 0.5), rng.uniform(0, 400, 2)))
    dense = np.array(dense)
    truth = planted(dense).astype(np.float64)
    fitted = fit_dense68(dense, truth, yaw=True, ridge=1e-9, idx=idx)
    W = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    err = np.linalg.norm(fitted(dense) - truth, axis=-1).mean(1) / W
    assert err.max() < 1e-3



def test_fit_picks_the_mesh_points_nearest_to_each_target():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 40, (468, 2))
    base[33], base[263], base[1] = (-40, 0), (40, 0), (0, 30)
    # target j sits exactly on mesh point 5 * j: the nearest mesh point, weight 1
    dense = np.array([_similarity(base + rng.normal(0, 0.5, base.shape), 1.0, 0.0, np.zeros(2)) for _ in range(50)])
    truth = dense[:, 5 * np.arange(68)]
    fitted = fit_dense68(dense, truth, k=3, yaw=False, ridge=1e-9)
    assert np.all(fitted.idx[:, 0] == 5 * np.arange(68))
    np.testing.assert_allclose(fitted.a[:, 0], 1.0, atol=1e-3)
