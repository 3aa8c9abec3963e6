"""Test meshes and an obviously-correct brute-force point-to-mesh reference, shared through the
``em`` fixture (the test suite runs with --import-mode=importlib, so helpers are not importable)."""
from __future__ import annotations

import types

import numpy as np
import pytest


def icosphere(subdivisions: int = 2, radius: float = 1.0):
    """Icosphere: (vertices (V, 3) float64 on the sphere, faces (F, 3) int64, counter-clockwise outward)."""
    t = (1.0 + 5**0.5) / 2.0
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11],
         [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = [tuple(x) for x in f]
    for _ in range(subdivisions):
        cache = {}

        def mid(i, j):
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = verts[i] + verts[j]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts) * radius, np.array(faces, dtype=np.int64)


def grid(n: int = 10, size: float = 1.0):
    """Planar (n+1) x (n+1) grid in z = 0 covering [-size/2, size/2]^2, normals +z."""
    xs = np.linspace(-size / 2, size / 2, n + 1)
    x, y = np.meshgrid(xs, xs, indexing="xy")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a = (i * (n + 1) + j).ravel()
    b, c, d = a + 1, a + n + 1, a + n + 2
    f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return v, f.astype(np.int64)


def bumpy_sphere(subdivisions: int = 3, radius: float = 90.0, seed: int = 0):
    """An asymmetric closed 'head-like' surface: icosphere with smooth radial bumps and an ellipsoid stretch."""
    v, f = icosphere(subdivisions, 1.0)
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=6)
    r = radius * (1 + 0.08 * np.tanh(coef[0] * v[:, 0] + coef[1] * v[:, 1] * v[:, 2] + coef[2] * v[:, 1] ** 2))
    v = v * r[:, None] * np.array([0.8, 1.1, 1.0])
    return v, f


def segment_distance(p, a, b):
    """Distance from points p (N, 3) to segments a-b (broadcast), clamped projection."""
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def brute_force_distance(points, vertices, faces):
    """Reference: for each point and triangle, project onto the plane; if the projection is inside
    the triangle the distance is the plane distance, otherwise the nearest of the three edge segments.
    Minimum over all triangles.  O(N F), float64."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]  # (N, 1, 3)
    a, b, c = (np.asarray(vertices, dtype=np.float64)[faces[:, k]][None] for k in range(3))  # (1, F, 3)
    n = np.cross(b - a, c - a)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    h = ((p - a) * n).sum(-1)  # signed plane distance (N, F)
    proj = p - h[..., None] * n
    # inside test: same side of all three edges (barycentric signs)
    s1 = (np.cross(b - a, proj - a) * n).sum(-1)
    s2 = (np.cross(c - b, proj - b) * n).sum(-1)
    s3 = (np.cross(a - c, proj - c) * n).sum(-1)
    inside = (s1 >= 0) & (s2 >= 0) & (s3 >= 0)
    edge = np.minimum(np.minimum(segment_distance(p, a, b), segment_distance(p, b, c)), segment_distance(p, c, a))
    d = np.where(inside, np.abs(h), edge)
    return d.min(axis=1)


def random_rotation(rng, angle_deg: float | None = None):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = np.deg2rad(angle_deg) if angle_deg is not None else rng.uniform(0, np.pi)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * k @ k


@pytest.fixture(scope="session")
def em():
    """Namespace of the helpers above."""
    return types.SimpleNamespace(
        icosphere=icosphere,
        grid=grid,
        bumpy_sphere=bumpy_sphere,
        segment_distance=segment_distance,
        brute_force_distance=brute_force_distance,
        random_rotation=random_rotation,
    )
