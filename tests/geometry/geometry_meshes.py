"""Synthetic meshes for the geometry tests (built here, no assets needed)."""
from __future__ import annotations

import numpy as np


def icosphere(level: int = 2):
    """Unit icosphere ``(V, 3) float64, (F, 3) int32``, outward counter-clockwise faces."""
    t = (1.0 + 5 ** 0.5) / 2.0
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
         [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = [np.array(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(level):
        cache = {}

        def mid(a, b):
            k = (min(a, b), max(a, b))
            if k not in cache:
                p = v[a] + v[b]
                v.append(p / np.linalg.norm(p))
                cache[k] = len(v) - 1
            return cache[k]

        nf = []
        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = nf
    return np.array(v), np.array(f, np.int32)


def grid(nx: int, ny: int, lx: float = 1.0, ly: float = 1.0):
    """Planar ``(nx+1) x (ny+1)`` grid in z = 0, each cell split by its (0,0)-(1,1) diagonal."""
    x, y = np.meshgrid(np.linspace(0, lx, nx + 1), np.linspace(0, ly, ny + 1), indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    idx = np.arange(v.shape[0]).reshape(nx + 1, ny + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int32)
    return v, f


def bend_strip(v, length: float, degrees: float):
    """Isometric bend of a strip lying along x (z = 0) around an axis parallel to y."""
    phi_total = np.deg2rad(degrees)
    phi = phi_total * v[:, 0] / length
    rho = length / phi_total
    return np.stack([rho * np.sin(phi), v[:, 1], rho * (1.0 - np.cos(phi))], 1)


def bumpy_sphere(level: int = 2, seed: int = 0, amplitude: float = 0.15):
    """An icosphere with a smooth random radial bump field (non-symmetric test surface)."""
    v, f = icosphere(level)
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(4, 3))
    bump = sum(np.cos(3.0 * v @ d + k) for k, d in enumerate(dirs)) / 4.0
    return v * (1.0 + amplitude * bump)[:, None], f


def random_rotation(rng, angle=None):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    if angle is None:
        angle = rng.uniform(0, np.pi)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
