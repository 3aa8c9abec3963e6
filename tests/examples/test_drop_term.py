"""examples/drop_term.py (tutorial "Dropping a term"): dropping a default term by name."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from digitaltwin_jax import fitting as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tutorial_load import load_example  # noqa: E402
from digitaltwin_jax.model.head_model import asset_path, load_head_model  # noqa: E402

X = load_example("drop_term")
needs_low = pytest.mark.skipif(not asset_path("ict_head_low.npz").exists(), reason="low head model not built")


def sphere_face():
    """The low head, the tutorial's synthetic face's landmarks and its shape (so the tutorial's run
    below reuses the programs these tests compile)."""
    model = load_head_model("low")
    shape, lm, _ = load_example("custom_energy_term").synthetic_face(model, seed=3)
    return model, lm, shape


@needs_low
def test_dropping_corrective_frees_no_corrective_field():
    model, lm, shape = sphere_face()
    cfg = F.FitConfig(num_iterations=3)
    terms = X.without(F.default_terms(cfg), "corrective")
    assert "offsets" not in F.free_variables(terms, cfg)
    assert "offsets" in F.free_variables(F.default_terms(cfg), cfg)
    dropped = F.fit(model, lm, (480, 640), shape=shape, config=cfg, terms=terms)
    assert np.all(dropped.params.delta_p == 0.0)
    full = F.fit(model, lm, (480, 640), shape=shape, config=cfg)
    assert np.abs(full.params.delta_p).max() > 1e-3  # with the term the field is used
    # the deprecated switch is the same thing
    alias = F.fit(model, lm, (480, 640), shape=shape, config=F.FitConfig(num_iterations=3, fit_corrective=False))
    np.testing.assert_array_equal(alias.vertices, dropped.vertices)
    with pytest.raises(ValueError, match=r"fit_corrective=False\) contradicts"):
        F.fit(model, lm, (480, 640), shape=shape, config=F.FitConfig(fit_corrective=False), terms=F.default_terms(cfg))
    with pytest.raises(ValueError, match="no term called"):
        X.without(terms, "corrective")


@needs_low
def test_dropping_expression_prior_keeps_beta_free_and_fixing_it_by_config():
    model, lm, shape = sphere_face()
    cfg = F.FitConfig(num_iterations=3)
    terms = X.without(F.default_terms(cfg), "expression_prior")
    assert "beta" in F.free_variables(terms, cfg)
    assert "beta" not in F.free_variables(terms, F.FitConfig(fit_expression=False))
    bad = F.Term("bad", lambda v, d: v.beta, unknowns=("nonsense",))
    with pytest.raises(ValueError, match="declares unknowns"):
        F.fit(model, lm, (480, 640), shape=shape, config=cfg, terms=terms + (bad,))


@needs_low
def test_tutorial_runs_and_dropping_corrective_zeroes_the_field():
    """The script as a reader runs it: three fits; without "corrective" deltaP is exactly 0, with it
    the field moves; without the expression prior the blendshapes are freer (larger sum) than with it."""
    out = X.main(["--seed", "3", "--iterations", "3"])["results"]  # the programs the tests above compiled
    assert set(out) == {"paper energy", "- corrective", "- expression_prior"}
    _, paper = out["paper energy"]
    _, nocorr = out["- corrective"]
    _, noprior = out["- expression_prior"]
    assert np.all(nocorr.params.delta_p == 0.0) and np.abs(paper.params.delta_p).max() > 1e-3
    assert noprior.params.beta.sum() >= paper.params.beta.sum() - 1e-6
    for r in (paper, nocorr, noprior):  # every variant still fits the landmarks (1 px noise)
        assert np.sqrt(np.nanmean(r.reprojection_errors ** 2)) < 5.0
