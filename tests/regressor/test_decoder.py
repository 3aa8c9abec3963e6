"""Decoder: shapes, PCA initialisation against an independent reference, jit/vmap, gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax.regressor.decoder import DecoderConfig, ShapeDecoder, decode, init_decoder, num_parameters, pca_basis


def _random_shapes(n=30, v=20, seed=0):
    rng = np.random.default_rng(seed)
    # anisotropic data so the principal directions are well separated
    scales = np.geomspace(50.0, 0.5, 3 * v)
    return (rng.normal(size=(n, 3 * v)) * scales @ np.linalg.qr(rng.normal(size=(3 * v, 3 * v)))[0]).reshape(n, v, 3) + 10.0


def test_output_shapes_and_parameter_count():
    cfg = DecoderConfig(embedding_dim=16, num_vertices=25, hidden=8, num_components=10)
    pca = pca_basis(_random_shapes(v=25), 10)
    var = init_decoder(jax.random.key(0), cfg, pca)
    assert decode(cfg, var, np.zeros((5, 16))).shape == (5, 25, 3)
    assert decode(cfg, var, np.zeros(16)).shape == (25, 3)
    assert decode(cfg, var, np.zeros((2, 3, 16))).shape == (2, 3, 25, 3)
    assert num_parameters(var) == (16 * 8 + 8) + (8 * 10 + 10) + (10 * 75 + 75)
    # the paper-sized decoder on the low mesh: ~1.8 M parameters
    full = DecoderConfig()
    shapes = jax.eval_shape(lambda: ShapeDecoder(full).init(jax.random.key(0), jnp.zeros((1, 128))))
    assert num_parameters(shapes) == 1_791_012
    with pytest.raises(ValueError, match="last dimension"):
        decode(cfg, var, np.zeros((5, 17)))


def test_pca_matches_covariance_eigendecomposition():
    x = _random_shapes().reshape(30, -1)
    pca = pca_basis(x, 12)
    # independent reference: eigenvectors of the sample covariance (numpy eigh, float64)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / (len(x) - 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:12]
    np.testing.assert_allclose(pca.mean, mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pca.stddev, np.sqrt(evals[order]), rtol=1e-4)
    # same directions up to sign
    dots = np.abs(np.sum(pca.components * evecs[:, order].T, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-4)
    np.testing.assert_allclose(pca.explained, evals[order].sum() / evals.sum(), rtol=1e-6)


def test_pca_pads_beyond_rank():
    x = _random_shapes(n=5, v=10)
    pca = pca_basis(x, 8)  # rank of 5 centred samples is 4
    assert pca.components.shape == (8, 30)
    assert np.all(pca.components[4:] == 0) and np.all(pca.stddev[4:] == 0)
    assert pca.explained == pytest.approx(1.0)


@pytest.mark.parametrize("scale", ["unit", "std"])
def test_pca_initialisation_reproduces_pca_reconstruction(scale):
    """With layers 1-2 passing the coefficients through, the untrained decoder is mean + c @ components."""
    n, v, c = 30, 20, 12
    shapes = _random_shapes(n, v)
    cfg = DecoderConfig(embedding_dim=c, num_vertices=v, hidden=c, num_components=c, activation="linear", pca_scale=scale)
    var = init_decoder(jax.random.key(1), cfg, pca_basis(shapes, c))
    p = var["params"]
    p["fc1"] = {"kernel": jnp.eye(c), "bias": jnp.zeros(c)}
    p["fc2"] = {"kernel": jnp.eye(c), "bias": jnp.zeros(c)}
    # numpy SVD reference
    flat = shapes.reshape(n, -1)
    mean = flat.mean(0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    comps = vt[:c]
    coeff = (flat - mean) @ comps.T  # PCA coefficients of each training shape
    ref = mean + coeff @ comps  # the rank-c PCA reconstruction
    # signs of our components may differ: express coefficients in our basis
    ours = np.asarray(pca_basis(shapes, c).components, np.float64)
    sign = np.sign(np.sum(ours * comps, axis=1))
    c_in = coeff * sign
    if scale == "std":
        c_in = c_in / (s[:c] / np.sqrt(n - 1))
    out = np.asarray(decode(cfg, var, c_in.astype(np.float32))).reshape(n, -1)
    np.testing.assert_allclose(out, ref, atol=2e-3 * np.abs(ref).max())
    # the kernel itself is the (scaled) component matrix and the bias is the mean
    k = np.asarray(p["fc3"]["kernel"]) * sign[:, None]
    expect = comps * ((s[:c] / np.sqrt(n - 1))[:, None] if scale == "std" else 1.0)
    np.testing.assert_allclose(k, expect, atol=1e-4 * np.abs(expect).max())
    np.testing.assert_allclose(np.asarray(p["fc3"]["bias"]), mean, atol=1e-3)


def test_input_standardisation_uses_the_given_statistics():
    cfg = DecoderConfig(embedding_dim=4, num_vertices=3, hidden=4, num_components=2, activation="linear")
    pca = pca_basis(_random_shapes(n=6, v=3), 2)
    mu, sd = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 0.5, 1.0])
    var = init_decoder(jax.random.key(0), cfg, pca, mu, sd)
    base = init_decoder(jax.random.key(0), cfg, pca)
    e = np.array([3.0, -1.0, 2.0, 0.0], np.float32)
    np.testing.assert_allclose(decode(cfg, var, e), decode(cfg, base, (e - mu) / sd), rtol=1e-5, atol=1e-4)


def test_jit_and_vmap_match_the_batched_call():
    cfg = DecoderConfig(embedding_dim=16, num_vertices=20, hidden=8, num_components=6)
    var = init_decoder(jax.random.key(2), cfg, pca_basis(_random_shapes(v=20), 6))
    e = np.random.default_rng(3).normal(size=(7, 16)).astype(np.float32)
    batched = decode(cfg, var, e)
    jitted = jax.jit(lambda x: decode(cfg, var, x))(e)
    mapped = jax.vmap(lambda x: decode(cfg, var, x))(e)
    one_by_one = np.stack([np.asarray(decode(cfg, var, x)) for x in e])
    np.testing.assert_allclose(jitted, one_by_one, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mapped, one_by_one, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-4)


def test_gradients_against_finite_differences():
    cfg = DecoderConfig(embedding_dim=5, num_vertices=4, hidden=6, num_components=3)
    var = init_decoder(jax.random.key(4), cfg, pca_basis(_random_shapes(n=8, v=4), 3))
    with jax.enable_x64(True):
        v64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), var)
        e = jnp.asarray(np.random.default_rng(5).normal(size=(2, 5)))

        @jax.jit
        def f(params, x):
            return decode(cfg, {"params": params, "constants": v64["constants"]}, x)

        check_grads(lambda x: f(v64["params"], x), (e,), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)
        check_grads(lambda p: f(p, e), (v64["params"],), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_bad_config_and_basis_are_rejected():
    with pytest.raises(ValueError, match="activation"):
        DecoderConfig(activation="swish-ish")
    with pytest.raises(ValueError, match="pca_scale"):
        DecoderConfig(pca_scale="whiten")
    cfg = DecoderConfig(embedding_dim=4, num_vertices=5, hidden=4, num_components=3)
    with pytest.raises(ValueError, match="do not match"):
        init_decoder(jax.random.key(0), cfg, pca_basis(_random_shapes(n=6, v=4), 3))
    with pytest.raises(ValueError, match="NaN"):
        pca_basis(np.full((3, 4, 3), np.nan))
