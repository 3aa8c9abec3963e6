"""geometry.mesh normals: the numpy and JAX implementations against closed forms and each other."""
from __future__ import annotations

import jax
import numpy as np

from digitaltwin_jax.geometry.mesh import face_normals, face_normals_np, vertex_normals, vertex_normals_np


def _octahedron(r=2.0):
    v = np.array([[r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0], [0, 0, r], [0, 0, -r]], np.float64)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def test_octahedron_closed_form():
    v, f = _octahedron()
    n = face_normals_np(v, f)
    # every face's unit normal is (+-1, +-1, +-1) / sqrt(3), pointing away from the centre
    np.testing.assert_allclose(np.abs(n), 1 / np.sqrt(3), rtol=1e-12)
    assert np.all(np.sum(n * v[f].mean(axis=1), axis=1) > 0)
    # unnormalised: length = 2 x area = 2 x (sqrt(3) / 4) (r sqrt(2))^2
    np.testing.assert_allclose(np.linalg.norm(face_normals_np(v, f, normalize=False), axis=1), np.sqrt(3) * 4.0, rtol=1e-12)
    # vertex normals of the octahedron are radial
    np.testing.assert_allclose(vertex_normals_np(v, f), v / 2.0, atol=1e-12)


def test_numpy_equals_jax_and_degenerate_faces_give_zero():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 3))
    f = rng.integers(0, 30, size=(60, 3))
    f[0] = [3, 3, 5]  # zero area
    v[29] = 1e3  # vertex 29 in no face:
    f[f == 29] = 28
    with jax.enable_x64(True):
        np.testing.assert_allclose(face_normals_np(v, f), np.asarray(face_normals(v, f)), atol=1e-12)
        np.testing.assert_allclose(vertex_normals_np(v, f), np.asarray(vertex_normals(v, f)), atol=1e-12)
    np.testing.assert_array_equal(face_normals_np(v, f)[0], 0.0)
    np.testing.assert_array_equal(vertex_normals_np(v, f)[29], 0.0)
    # a plain loop reference of the area-weighted sum
    ref = np.zeros_like(v)
    for a, b, c in f:
        ref[[a, b, c]] += np.cross(v[b] - v[a], v[c] - v[a])
    np.testing.assert_allclose(vertex_normals_np(v, f, normalize=False), ref, rtol=1e-12, atol=1e-12)
