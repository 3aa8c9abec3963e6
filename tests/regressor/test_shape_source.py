"""RegressorShapeSource: both call forms, None on failure, transfer between resolutions."""
import jax
import numpy as np
import pytest

from digitaltwin_jax.regressor.decoder import DecoderConfig, init_decoder, pca_basis
from digitaltwin_jax.regressor.shape_source import RegressorShapeSource
from digitaltwin_jax.regressor.weights import Regressor


class _Model:
    """The two HeadModel attributes the source needs for a same-resolution call."""

    def __init__(self, v):
        self.num_vertices = v
        self.resolution = "low"


def _source(tiny_shapes, embed_fn):
    mean, basis, _ = tiny_shapes
    shapes = mean + np.tensordot(np.random.default_rng(0).normal(size=(30, 6)), basis, axes=1)
    cfg = DecoderConfig(embedding_dim=8, num_vertices=40, hidden=10, num_components=6)
    var = init_decoder(jax.random.key(0), cfg, pca_basis(shapes, 6))
    return RegressorShapeSource(Regressor(cfg, var, {"resolution": "low"}, {}), embed_fn=embed_fn), cfg, var


def test_calls_and_failures(tiny_shapes):
    e = np.linspace(-1, 1, 8).astype(np.float32)
    calls = []

    def embed(image, face):
        calls.append(face)
        return None if face == "bad" else e

    src, cfg, var = _source(tiny_shapes, embed)
    from digitaltwin_jax.regressor.decoder import decode

    expect = np.asarray(decode(cfg, var, e))
    m = _Model(40)
    np.testing.assert_allclose(src(None, "face", m), expect, rtol=1e-6)
    # the pipeline's stage form reuses the given embedding (no encoder call)
    n = len(calls)
    np.testing.assert_allclose(src(None, "face", e, m), expect, rtol=1e-6)
    assert len(calls) == n
    # a NaN embedding from the pipeline falls back to the encoder
    np.testing.assert_allclose(src(None, "face", np.full(8, np.nan), m), expect, rtol=1e-6)
    assert src(None, None, m) is None
    assert src(None, "bad", m) is None
    assert src.name == "regressor"
    with pytest.raises(TypeError):
        src(None, "face")


def test_transfer_low_to_full_through_identity_space():
    from digitaltwin_jax.model.head_model import asset_path

    if not (asset_path("ict_head_low.npz").exists() and asset_path("ict_head_full.npz").exists()):
        pytest.skip("head model assets missing")
    from digitaltwin_jax import head_shape, load_head_model

    low, full = load_head_model("low"), load_head_model("full")
    alpha = np.random.default_rng(3).normal(size=low.num_identity).astype(np.float32)
    v_low = np.asarray(head_shape(low, alpha))
    src = RegressorShapeSource(Regressor(DecoderConfig(), {}, {"resolution": "low"}, {}), embed_fn=lambda i, f: None)
    got = src._to_model(v_low, full)
    ref = np.asarray(head_shape(full, alpha))
    assert got.shape == (full.num_vertices, 3)
    assert np.max(np.linalg.norm(got - ref, axis=1)) < 0.5  # mm; ridge 1e-3 on N(0,1) coefficients


def test_guarded_source_is_template_plus_factor_times_deviation():
    """The shipped regressor with its guard: P = template + s(m) (P_reg - template), s from the guard."""
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.weights import load_regressor

    model = load_head_model("low")
    reg, guard = load_regressor(), load_guard()
    src = RegressorShapeSource(reg, guard=guard)
    assert src.name == "guarded" and RegressorShapeSource(reg).name == "regressor"
    direction = np.linalg.eigh(np.linalg.inv(guard.stats.precision))[1][:, -1]
    cov_scale = 1.0 / np.sqrt(direction @ guard.stats.precision @ direction)  # 1 Mahalanobis unit
    for m_target in (0.0, 1.1 * guard.m_ref, 3.0 * guard.m_max):
        e = (guard.stats.mean + m_target * cov_scale * direction).astype(np.float32)
        v, info = src(None, "face", e, model)
        s = float(guard.factor(e[None])[0])
        assert info["guard_factor"] == pytest.approx(s) and info["mahalanobis"] == pytest.approx(m_target, rel=1e-3, abs=1e-3)
        p = np.asarray(reg(e), np.float64)
        np.testing.assert_allclose(v, model.vertices + s * (p - model.vertices), atol=1e-4)
    assert s == 0.0  # far beyond the calibrated range: the template
