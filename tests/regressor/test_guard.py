"""The regressor's out-of-distribution guard: closed forms, calibration on constructed data, files."""
import math

import numpy as np
import pytest

from digitaltwin_jax.regressor.guard import OODGuard, calibrate_power, load_guard, make_guard, save_guard, shrink_factor


def test_shrink_factor_closed_form():
    m = np.array([0.5, 1.0, 2.0, 4.0, np.nan])
    np.testing.assert_allclose(shrink_factor(m, 1.0, 2.0), [1.0, 1.0, 0.25, 1 / 16, np.nan])
    np.testing.assert_allclose(shrink_factor(m, 1.0, 0.0), [1.0, 1.0, 1.0, 1.0, np.nan])
    np.testing.assert_allclose(shrink_factor(m, 1.0, math.inf), [1.0, 1.0, 0.0, 0.0, np.nan])


def test_guard_apply_interpolates_toward_template():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 8))
    guard = make_guard(train[:200], train[200:], power=1.0)
    # m_ref is the 95th percentile of held-out distances: ~95% of new in-distribution points are inside
    inside = np.mean(guard.distance(rng.normal(size=(2000, 8))) <= guard.m_ref)
    assert 0.88 < inside < 0.99
    tmpl = rng.normal(size=(10, 3))
    pred = rng.normal(size=(2, 10, 3))
    far = np.zeros((1, 8))
    far[0, 0] = 10.0 * guard.m_ref  # far out along one axis
    emb = np.concatenate([np.zeros((1, 8)), far])
    out = guard.apply(tmpl, pred, emb)
    s = guard.factor(emb)
    assert s[0] == 1.0 and 0.0 < s[1] < 0.2
    np.testing.assert_allclose(out[0], pred[0], atol=1e-6)
    np.testing.assert_allclose(out[1], tmpl + s[1] * (pred[1] - tmpl), atol=1e-5)


def test_calibrate_power_recovers_the_better_rule():
    # items far outside (m = 4 m_ref) are best at s = 0, items inside at s = 1: infinite power wins
    d = np.array([0.5, 0.5, 4.0, 4.0])
    f = np.array([0.0, 0.5, 1.0])
    e = np.array([[2.0, 1.5, 1.0], [2.0, 1.5, 1.0], [1.0, 1.5, 2.0], [1.0, 1.5, 2.0]])
    p, curve = calibrate_power(d, f, e, 1.0, powers=(0.0, 1.0, math.inf))
    assert p == math.inf
    assert curve["0.0"] == pytest.approx(1.5) and curve["inf"] == pytest.approx(1.0)
    # power 1 at m = 4: s = 0.25 -> interpolated error 1.25 for the far items
    assert curve["1.0"] == pytest.approx((1.0 + 1.0 + 1.25 + 1.25) / 4)
    with pytest.raises(ValueError, match="factors"):
        calibrate_power(d, np.array([0.2, 1.0]), e[:, :2], 1.0)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 5))
    g = make_guard(x[:80], x[80:], power=math.inf, record={"note": "test"})
    save_guard(g, tmp_path)
    h = load_guard(tmp_path)
    assert isinstance(h, OODGuard) and h.power == math.inf and h.m_ref == pytest.approx(g.m_ref)
    q = rng.normal(size=(4, 5)) * 3
    np.testing.assert_allclose(h.factor(q), g.factor(q))
    assert h.record["note"] == "test"
    with pytest.raises(FileNotFoundError, match="guard"):
        load_guard(tmp_path / "nothing")


def test_guard_fades_to_the_template_beyond_the_calibrated_range():
    m = np.array([1.0, 2.0, 10.0, 11.25, 12.5, 30.0])
    s = shrink_factor(m, 2.0, 1.0, m_max=10.0)
    # inside m_ref: 1; up to m_max: (m_ref/m)^p; fades linearly to 0 at 1.25 m_max
    np.testing.assert_allclose(s, [1.0, 1.0, 0.2, (2 / 11.25) * 0.5, 0.0, 0.0])
