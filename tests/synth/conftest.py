"""Shared fixtures for the synthetic-engine tests (the shipped low model; skipped if its asset is missing)."""
import numpy as np
import pytest

from digitaltwin_jax.model.head_model import asset_path


@pytest.fixture(scope="session")
def low_model():
    if not (asset_path("ict_head_full.npz").exists() and asset_path("ict_head_low.npz").exists()):
        pytest.skip("head model asset missing")
    from digitaltwin_jax import load_head_model

    return load_head_model("low")


@pytest.fixture(scope="session")
def small_bank(low_model):
    from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry

    m = low_model
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 256)
    return procedural_bank(geom, 3, seed=7)


@pytest.fixture(scope="session")
def renderer(low_model, small_bank):
    from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer

    return SceneRenderer(low_model, small_bank, RenderConfig(ao_directions=8))


def _project_reference(X, R, t, K):
    """Pinhole projection written out per point (independent of the engine)."""
    out = []
    for p in np.asarray(X, np.float64):
        c = np.asarray(R, np.float64) @ p + np.asarray(t, np.float64)
        u = np.asarray(K, np.float64) @ (c / c[2])
        out.append(u[:2])
    return np.array(out)


@pytest.fixture(scope="session")
def project_reference():
    return _project_reference
