"""Held-out evaluation helpers: summary statistics, the table, ARMSE of a perfect prediction."""
import numpy as np
import pytest

from digitaltwin_jax.regressor.evaluate import armse_table, markdown_table, summarise


def test_summary_uses_common_items_and_1_96_standard_error():
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([[2.0, 2.0], [np.nan, np.nan], [4.0, 8.0]])
    s = summarise({"a": a, "b": b}, radii=(80, 90))
    # item 1 is dropped for both methods (b has no prediction there)
    assert s["a"]["n"] == 2 and s["a"]["mean"] == [3.0, 4.0]
    np.testing.assert_allclose(s["a"]["ci95"], 1.96 * np.std([[1, 2], [5, 6]], axis=0, ddof=1) / np.sqrt(2))
    assert s["b"]["mean"] == [3.0, 5.0]
    md = markdown_table(s, {"a": "method A"})
    assert "| method A | 3.00 ± 3.92 | 4.00 ± 3.92 |" in md and "d = 80" in md


def test_perfect_prediction_has_zero_armse():
    from digitaltwin_jax.model.head_model import asset_path

    if not asset_path("ict_head_low.npz").exists():
        pytest.skip("head model asset missing")
    from digitaltwin_jax import head_shape, load_head_model

    m = load_head_model("low")
    gt = np.asarray(head_shape(m, np.random.default_rng(0).normal(size=10)))[None]
    t = armse_table(m, gt, {"exact": gt, "none": np.full_like(gt, np.nan)}, radii=(80.0, 110.0), progress=False)
    assert t["exact"].shape == (1, 2) and np.all(t["exact"] < 1e-3)
    assert np.all(np.isnan(t["none"]))
