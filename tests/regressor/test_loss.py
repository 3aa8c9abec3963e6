"""The weighted per-vertex L1 loss against hand computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digitaltwin_jax.regressor.loss import per_vertex_l1, weighted_l1


def test_weighted_l1_by_hand():
    pred = np.zeros((1, 3, 3), np.float32)
    target = np.array([[[1, 0, 0], [0, -2, 2], [0.5, 0.5, 0.5]]], np.float32)
    w = np.array([5.0, 1.0, 1.0], np.float32)
    # per-vertex L1: 1, 4, 1.5 ; weighted sum 5*1 + 4 + 1.5 = 10.5 ; sum of weights 7
    assert float(weighted_l1(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(w))) == pytest.approx(10.5 / 7)
    np.testing.assert_allclose(per_vertex_l1(pred, target)[0], [1.0, 4.0, 1.5])


def test_batch_mean_and_symmetry():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    w = rng.uniform(1, 5, size=5).astype(np.float32)
    ref = np.mean([np.sum(w * np.abs(p[b] - t[b]).sum(-1)) / w.sum() for b in range(4)])
    assert float(weighted_l1(p, t, w)) == pytest.approx(ref, rel=1e-6)
    assert float(weighted_l1(t, p, w)) == pytest.approx(ref, rel=1e-6)
    assert float(jax.jit(weighted_l1)(p, t, w)) == pytest.approx(ref, rel=1e-6)


def test_gradient_is_weighted_sign():
    p = jnp.array([[1.0, -2.0, 3.0], [0.5, 0.5, -0.5]])
    w = jnp.array([5.0, 1.0])
    g = jax.grad(weighted_l1)(p, jnp.zeros_like(p), w)
    np.testing.assert_allclose(g, np.sign(np.asarray(p)) * np.array([[5.0], [1.0]]) / 6.0, rtol=1e-6)


def test_face_weights_of_the_shipped_model():
    from digitaltwin_jax.model.head_model import asset_path

    if not asset_path("ict_head_low.npz").exists():
        pytest.skip("head model asset missing")
    from digitaltwin_jax import load_head_model

    m = load_head_model("low")
    d = np.linalg.norm(m.vertices - m.vertices[m.nose_tip_index], axis=1)
    np.testing.assert_array_equal(m.face_weights, np.where(d <= 95.0, 5.0, 1.0))


def test_shape_errors():
    with pytest.raises(ValueError, match="weights"):
        weighted_l1(jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="pred and target"):
        weighted_l1(jnp.zeros((2, 4, 3)), jnp.zeros((2, 5, 3)), jnp.ones(4))
