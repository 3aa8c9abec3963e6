"""Fixtures shared by the multiview tests."""
import pytest


@pytest.fixture(scope="module")
def model():
    """The low-resolution head model (loaded once per test module)."""
    from digitaltwin_jax import load_head_model

    return load_head_model("low")
