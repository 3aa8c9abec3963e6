"""shape_prior.calibrate: empirical Bayes recovers a known template shift, trust, width and noise from
data drawn from its own generative model (linear landmarks), and scores held-out photos."""
import json

import numpy as np
import pytest

from digitaltwin_jax.shape_prior.calibrate import EvidenceSet, PriorRule, calibrate, heldout_log_evidence


def _simulate(rng, n, k=6, rows=40, c=None, tau=0.4, sigma=0.5, kappa=2.0, distance=None):
    c = np.zeros(k) if c is None else c
    Ps, bs, qs = [], [], []
    d = rng.normal(size=(n, k)) * 1.5
    m = np.full(n, 20.0) if distance is None else distance
    for i in range(n):
        J = rng.normal(size=(rows, k)) * rng.uniform(0.3, 3.0, size=k)  # modes seen more or less well
        alpha = c + tau * d[i] + sigma * rng.normal(size=k)
        y = J @ alpha + kappa * rng.normal(size=rows)  # "landmarks" = J alpha + noise; r0 = -y at alpha = 0
        r0 = -y
        Ps.append(J.T @ J)
        bs.append(-J.T @ r0)
        qs.append(r0 @ r0)
    return EvidenceSet(np.array(Ps), np.array(bs), np.array(qs), np.full(n, float(rows)), d, m)


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.7])
def test_recovers_a_known_trust(tau):
    rng = np.random.default_rng(int(tau * 10))
    ev = _simulate(rng, 300, tau=tau, c=np.array([0.5, -0.3, 0.0, 0.2, 0.0, 0.0]),
                   distance=rng.uniform(15, 25, size=300))
    rule, info = calibrate(ev, trust_slope=False, sigma_slope=False)
    assert info["converged"]
    assert rule.tau[0] == pytest.approx(tau, abs=0.1)
    assert rule.sigma(20.0) == pytest.approx(0.5, rel=0.25)
    assert rule.kappa == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(rule.template[:4], [0.5, -0.3, 0.0, 0.2], atol=0.2)


def test_trust_that_falls_with_distance():
    rng = np.random.default_rng(7)
    n = 400
    m = rng.uniform(10, 30, size=n)
    ev = _simulate(rng, n, tau=0.0, distance=m)
    # regenerate with a distance-dependent trust: tau(m) = 0.8 - 0.03 (m - 10)
    d = ev.deviation
    Ps, bs, qs = [], [], []
    for i in range(n):
        J = rng.normal(size=(40, 6))
        alpha = (0.8 - 0.03 * (m[i] - 10)) * d[i] + 0.3 * rng.normal(size=6)
        r0 = -(J @ alpha + 1.5 * rng.normal(size=40))
        Ps.append(J.T @ J), bs.append(-J.T @ r0), qs.append(r0 @ r0)
    ev = EvidenceSet(np.array(Ps), np.array(bs), np.array(qs), np.full(n, 40.0), d, m)
    rule, _ = calibrate(ev, fit_template=False)
    for dist in (12.0, 20.0, 28.0):
        assert float(rule.trust(dist)) == pytest.approx(0.8 - 0.03 * (dist - 10), abs=0.1)


def test_heldout_evidence_prefers_the_true_model():
    rng = np.random.default_rng(11)
    ev = _simulate(rng, 400, tau=0.5, sigma=0.6)
    tune, test = ev.subset(np.arange(400) < 200), ev.subset(np.arange(400) >= 200)
    full, _ = calibrate(tune, fit_template=False, trust_slope=False, sigma_slope=False)
    none, _ = calibrate(tune, fit_template=False, fit_trust=False, identity=False)
    assert heldout_log_evidence(full, test)["mean"] > heldout_log_evidence(none, test)["mean"] + 1.0


def test_rule_round_trip_and_clipping():
    r = PriorRule(np.arange(3.0), np.array([1.2, -0.5]), np.array([0.1, 0.2]), 1.5, 20.0, 4.0)
    r2 = PriorRule.from_json(json.loads(json.dumps(r.to_json())))
    np.testing.assert_array_equal(r2.template, r.template)
    assert r2.trust(20.0) == 1.0 and r2.trust(40.0) == 0.0  # clipped to [0, 1]
    assert r2.sigma(24.0) == pytest.approx(np.exp(0.5 * (0.1 + 0.2)))
    assert PriorRule(np.zeros(2), np.zeros(2), np.zeros(2), 0.0, 0.0, 1.0, identity=False).sigma(3.0) == 0.0


def test_needs_photos():
    ev = _simulate(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="at least 2"):
        calibrate(ev)
