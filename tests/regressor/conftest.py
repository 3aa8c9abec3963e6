"""Small generated shape sets shared by the regressor tests (no shipped asset needed)."""
import numpy as np
import pytest


@pytest.fixture
def tiny_shapes():
    """A 40-vertex 'head' with 6 random identity modes: (mean (V,3), basis (K,V,3), weights (V,))."""
    rng = np.random.default_rng(7)
    v = 40
    mean = rng.normal(size=(v, 3)).astype(np.float32) * 50.0
    basis = rng.normal(size=(6, v, 3)).astype(np.float32) * np.array([8, 6, 4, 3, 2, 1], np.float32)[:, None, None]
    weights = np.where(np.arange(v) < 15, 5.0, 1.0).astype(np.float32)
    return mean, basis, weights
