"""ARMSE curves (digitaltwin_jax/evaluation/plots.py)."""
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.evaluation.plots import mean_and_ci95, plot_armse_curves


def test_mean_and_ci95_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, np.nan]])
    mean, hw = mean_and_ci95(x)
    np.testing.assert_allclose(mean, [3.0, 2.0])
    # column 0: sample std = 2, n = 3 -> 1.96 * 2 / sqrt(3); column 1: two equal values -> 0
    np.testing.assert_allclose(hw, [1.96 * 2 / np.sqrt(3), 0.0])
    with pytest.raises(ValueError, match="no finite"):
        mean_and_ci95(np.array([[np.nan], [np.nan]]))


def test_plot_armse_curves_writes_png(tmp_path):
    radii = [80, 90, 100, 110]
    path = plot_armse_curves(
        tmp_path / "curves.png", radii, {"ours": [1.8, 1.9, 2.0, 2.1], "baseline": [2.0, 2.3, 2.7, 3.1]},
        errors={"ours": [0.1, 0.1, 0.12, 0.15]}, title="ARMSE", size_px=(400, 300),
    )
    img = Image.open(path)
    assert img.size == (400, 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
    with pytest.raises(ValueError, match="one value per radius"):
        plot_armse_curves(tmp_path / "bad.png", radii, {"ours": [1.0, 2.0]})
    with pytest.raises(ValueError, match="unknown curve"):
        plot_armse_curves(tmp_path / "bad.png", radii, {"ours": [1, 2, 3, 4]}, errors={"x": [0, 0, 0, 0]})
    with pytest.raises(ValueError, match="empty"):
        plot_armse_curves(tmp_path / "bad.png", radii, {})
