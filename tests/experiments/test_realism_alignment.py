"""experiments/realism_alignment.py (issue 14 item 3): the alignments move the first (and second)
moments of the source onto the target's."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import load  # noqa: E402
from digitaltwin_jax.evaluation.fidelity import EmbeddingStats  # noqa: E402

X = load("realism_alignment")


def _stats(mean, cov):
    return EmbeddingStats(np.asarray(mean, np.float64), np.linalg.inv(cov), 1000, 0.0)


def test_coral_and_mean_alignment_match_the_target_moments():
    rng = np.random.default_rng(0)
    d = 5
    a = rng.normal(size=(d, d))
    b = rng.normal(size=(d, d))
    cs, ct = a @ a.T + 0.5 * np.eye(d), b @ b.T + 0.5 * np.eye(d)
    ms, mt = rng.normal(size=d), rng.normal(size=d) + 2.0
    x = rng.multivariate_normal(ms, cs, size=200_000)
    y = X.make_alignment("coral", _stats(ms, cs), _stats(mt, ct))(x)
    np.testing.assert_allclose(y.mean(0), mt, atol=0.03)
    np.testing.assert_allclose(np.cov(y, rowvar=False), ct, atol=0.05 * np.abs(ct).max())
    z = X.make_alignment("mean", _stats(ms, cs), _stats(mt, ct))(x)
    np.testing.assert_allclose(z.mean(0), mt, atol=0.03)
    np.testing.assert_allclose(np.cov(z, rowvar=False), cs, atol=0.05 * np.abs(cs).max())  # unchanged
    np.testing.assert_array_equal(X.make_alignment("none", None, None)(x[:3]), x[:3])
    with pytest.raises(ValueError, match="unknown alignment"):
        X.make_alignment("whiten", None, None)
