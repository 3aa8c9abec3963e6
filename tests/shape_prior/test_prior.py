"""shape_prior.prior / source and the pipeline's identity prior: centres, widths, names, files, and the
fit's behaviour at the two limits of the width."""
import dataclasses
import json

import numpy as np
import pytest

from digitaltwin_jax.shape_prior.calibrate import PriorRule
from digitaltwin_jax.shape_prior.prior import (
    IdentityPrior, ShapePrior, identity_coefficients, load_shape_prior, save_shape_prior)


@pytest.fixture(scope="module")
def model():
    from digitaltwin_jax.model.head_model import load_head_model

    return load_head_model("low")


def _prior(k=100):
    c = np.zeros(k)
    c[:2] = [1.0, -0.5]
    rules = {"ict": PriorRule(np.zeros(k), np.array([0.3, 0.0]), np.array([np.log(0.25), 0.0]), np.log(9.0), 20.0, 4.0),
             "pipeline": PriorRule(c, np.array([0.3, -0.1]), np.array([np.log(0.25), 0.0]), np.log(9.0), 20.0, 4.0)}
    return ShapePrior(rules, "pipeline", np.linspace(0.8, 1.2, 68), {"note": "test"})


def test_identity_coefficients_recover_a_combination(model):
    a = np.zeros(model.num_identity)
    a[[0, 3, 10]] = [1.5, -0.7, 0.4]
    v = model.vertices + np.tensordot(a, model.identity_basis, 1)
    np.testing.assert_allclose(identity_coefficients(model, v), a, atol=1e-3)


def test_prior_centre_is_template_plus_trusted_deviation(model):
    sp = _prior()
    d = np.zeros(100)
    d[5] = 2.0
    p = sp.prior(model, d, 24.0)  # trust 0.3 - 0.1 * (24 - 20) / 4 = 0.2
    assert p.info["trust"] == pytest.approx(0.2)
    want = model.vertices + 1.0 * model.identity_basis[0] - 0.5 * model.identity_basis[1] + 0.4 * model.identity_basis[5]
    np.testing.assert_allclose(p.centre, want, atol=1e-4)
    assert p.sigma == pytest.approx(0.5)
    assert p.lambda_identity == pytest.approx(9.0 / 0.25)
    w = p.landmark_weights
    assert w.shape == (68,) and np.all(w[:17] == 1.0) and w[17] == pytest.approx(1 / np.linspace(0.8, 1.2, 68)[17] ** 2)
    # no embedding: trust 0, the template
    p0 = sp.prior(model, None, float("nan"))
    np.testing.assert_allclose(p0.centre, sp.template_vertices(model), atol=1e-5)
    assert p0.info["trust"] == 0.0


def test_names_and_files(tmp_path, model):
    sp = _prior()
    with pytest.raises(ValueError, match="unknown template 'people'"):
        sp.prior(model, None, 0.0, "people")
    save_shape_prior(sp, tmp_path / "p.json")
    back = load_shape_prior(tmp_path / "p.json")
    assert back.default_template == "pipeline" and sorted(back.rules) == ["ict", "pipeline"]
    np.testing.assert_allclose(back.template_vertices(model), sp.template_vertices(model))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_shape_prior(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text(json.dumps({"rules": {}}))
    with pytest.raises(ValueError, match="malformed"):
        load_shape_prior(tmp_path / "bad.json")


def test_shipped_prior_loads(model):
    sp = load_shape_prior()
    assert "ict" in sp.rules and sp.default_template in sp.rules
    assert not np.any(sp.rules["ict"].template)
    rec = sp.record
    assert rec["calibration_set"]["photos_tune"] >= 150 and "heldout" in rec


def test_fit_limits_of_the_width(model):
    """sigma -> 0: the fit keeps the centre (the same as fitting with that start shape, identity off);
    a wide prior lets the identity explain landmarks of a head with another identity."""
    from digitaltwin_jax.fitting import FitConfig, fit
    from digitaltwin_jax.pipeline import _default_fit

    a = np.zeros(model.num_identity)
    a[:3] = [2.0, -1.5, 1.0]
    true = model.vertices + np.tensordot(a, model.identity_basis, 1)
    R = np.eye(3)
    p = true[model.landmark_indices] @ R.T + np.array([0.0, 0.0, 650.0])
    lm = 1000.0 * p[:, :2] / p[:, 2:] + np.array([400.0, 400.0])
    centre = model.vertices.astype(np.float32)
    narrow = IdentityPrior(centre, 0.0, 3.0)
    r0 = _default_fit(model, lm, (800, 800), narrow)
    ref = fit(model, lm, (800, 800), shape=centre, config=FitConfig(fit_identity=False))
    np.testing.assert_allclose(r0.vertices, ref.vertices, atol=1e-4)
    wide = IdentityPrior(centre, 3.0, 3.0)
    r1 = _default_fit(model, lm, (800, 800), wide)
    alpha = np.asarray(r1.params.alpha)
    assert alpha.shape == (model.num_identity,)
    # the wide prior moves identity toward the truth: first mode's sign and size
    assert alpha[0] > 0.5
    assert np.linalg.norm(r1.reprojection_errors) < np.linalg.norm(r0.reprojection_errors)


def test_trust_floor_from_the_guard(model):
    sp = _prior()
    d = np.ones(100)
    assert sp.prior(model, d, 24.0, trust_floor=0.9).info["trust"] == pytest.approx(0.9)
    p = sp.prior(model, d, 24.0, trust_floor=0.1)
    assert p.info["trust"] == pytest.approx(0.2) and p.info["trust_from"] == "real photos (calibration)"


def test_width_shrinks_where_renders_vouch_for_the_regressor(model):
    sp = _prior()
    d = np.ones(100)
    full = sp.prior(model, d, 24.0, trust_floor=0.0)
    half = sp.prior(model, d, 24.0, trust_floor=0.5)
    none = sp.prior(model, d, 24.0, trust_floor=1.0)
    assert half.sigma == pytest.approx(0.5 * full.sigma)
    assert none.sigma == 0.0 and none.landmark_weights is None and none.info["trust"] == 1.0
