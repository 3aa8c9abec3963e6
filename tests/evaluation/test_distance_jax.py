"""Differentiable point-triangle kernel (digitaltwin_jax/evaluation/distance_jax.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from digitaltwin_jax.evaluation import distance_jax as DJ
from digitaltwin_jax.evaluation.distance import closest_points


def test_vmap_jit_matches_brute_force(em):
    rng = np.random.default_rng(0)
    v, f = em.bumpy_sphere(1, 10.0)
    pts = rng.normal(size=(64, 3)) * 12
    ref = em.brute_force_distance(pts, v, f)
    with jax.enable_x64(True):
        tri = jnp.asarray(v)[jnp.asarray(f)]
        fn = jax.jit(jax.vmap(jax.vmap(DJ.point_triangle_squared_distance, in_axes=(None, 0, 0, 0)), in_axes=(0, None, None, None)))
        d2 = fn(jnp.asarray(pts), tri[:, 0], tri[:, 1], tri[:, 2])
        assert d2.dtype == jnp.float64
        np.testing.assert_allclose(np.sqrt(np.asarray(d2).min(1)), ref, rtol=1e-9)
        dense = DJ.point_mesh_squared_distance_dense(pts, v, f)
        np.testing.assert_allclose(np.sqrt(np.asarray(dense)), ref, rtol=1e-9)


def test_float32_default_dtype():
    p = jnp.array([0.2, 0.3, 2.5], jnp.float32)
    a, b, c = jnp.zeros(3), jnp.array([1.0, 0, 0]), jnp.array([0.0, 1, 0])
    d2 = DJ.point_triangle_squared_distance(p, a, b, c)
    assert d2.dtype == jnp.float32
    np.testing.assert_allclose(float(d2), 6.25, rtol=1e-6)
    closest, bary = DJ.closest_point_on_triangle(p, a, b, c)
    np.testing.assert_allclose(closest, [0.2, 0.3, 0.0], atol=1e-7)
    np.testing.assert_allclose(bary, [0.5, 0.2, 0.3], atol=1e-7)


def test_given_faces_equals_accelerated_distance(em):
    rng = np.random.default_rng(1)
    v, f = em.icosphere(2, 20.0)
    pts = rng.normal(size=(100, 3)) * 25
    cp = closest_points(pts, v, f)
    with jax.enable_x64(True):
        d = DJ.point_mesh_distance_given_faces(pts, v, f, cp.face_ids)
        np.testing.assert_allclose(np.asarray(d), cp.distances, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "p",
    [
        [0.2, 0.3, 0.7],  # face region
        [0.5, -0.6, 0.4],  # edge AB region
        [0.9, 0.8, -0.3],  # edge BC region
        [-0.5, 0.4, 0.2],  # edge AC region
        [1.6, -0.4, 0.3],  # vertex B region
        [-0.4, -0.5, 0.6],  # vertex A region
    ],
)
def test_gradients_in_every_region(p):
    with jax.enable_x64(True):
        a = jnp.array([0.0, 0.0, 0.1])
        b = jnp.array([1.1, 0.05, -0.1])
        c = jnp.array([0.1, 0.9, 0.0])
        fn = jax.jit(DJ.point_triangle_squared_distance)
        check_grads(fn, (jnp.array(p), a, b, c), order=1, modes=["fwd", "rev"], eps=1e-6)
        # the gradient with respect to p is 2 (p - closest)
        closest, _ = DJ.closest_point_on_triangle(jnp.array(p), a, b, c)
        g = jax.grad(fn)(jnp.array(p), a, b, c)
        np.testing.assert_allclose(g, 2 * (jnp.array(p) - closest), rtol=1e-10)


def test_distance_gradient_finite_on_the_surface():
    with jax.enable_x64(True):
        v = jnp.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        f = jnp.array([[0, 1, 2]])
        fn = lambda pts: DJ.point_mesh_distance_given_faces(pts, v, f, jnp.array([0, 0])).sum()  # noqa: E731
        g = jax.grad(fn)(jnp.array([[0.2, 0.2, 0.0], [0.2, 0.2, 0.5]]))
        assert np.isfinite(np.asarray(g)).all()
        np.testing.assert_allclose(g[1], [0, 0, 1.0], atol=1e-12)
