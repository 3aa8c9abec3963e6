"""Small procedural meshes for tests, benchmarks and previews (no paper section: scaffolding).

All faces are counter-clockwise seen from outside; UVs follow the OBJ convention (v up).
"""
from __future__ import annotations

import numpy as np

__all__ = ["icosphere", "uv_sphere", "grid"]


def icosphere(subdivisions: int = 4, radius: float = 1.0):
    """Geodesic sphere: ``10 * 4**s + 2`` vertices (s = 4 gives 2,562 vertices, 5,120 faces).

    Returns:
      ``(vertices (V, 3) float32, faces (F, 3) int32)``.
    """
    t = (1.0 + 5.0**0.5) / 2.0
    v = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
         [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=np.float64)
    f = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
         [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(int(subdivisions)):
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # (3F, 2): ab, bc, ca
        key = np.sort(e, axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        mid = v[uniq[:, 0]] + v[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inv.reshape(3, -1) + v.shape[0]
        ab, bc, ca = m
        a, b, c = f.T
        v = np.concatenate([v, mid])
        f = np.concatenate(
            [np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1), np.stack([c, ca, bc], 1),
             np.stack([ab, bc, ca], 1)])
    return (v * radius).astype(np.float32), f.astype(np.int32)


def uv_sphere(n_lat: int = 32, n_lon: int = 64, radius: float = 1.0):
    """Latitude-longitude sphere (y up) with an equirectangular UV layout and a seam at longitude 0.

    ``u = longitude / 2 pi`` (longitude measured from +z toward +x), ``v = 0.5 + latitude / pi``.
    The seam column of UVs is duplicated, so ``uv_faces`` differs from ``faces``.

    Returns:
      ``(vertices (V, 3) float32, faces (F, 3) int32, uvs (T, 2) float32, uv_faces (F, 3) int32)``.
    """
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)[1:-1]  # interior rings
    lon = np.linspace(0.0, 2 * np.pi, n_lon + 1)  # last column duplicates the first in UV space
    # positions: poles + rings (n_lon distinct longitudes)
    la, lo = np.meshgrid(lat, lon[:-1], indexing="ij")
    ring = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)
    south, north = np.array([[0.0, -1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    verts = np.concatenate([ring, south, north]) * radius
    s_idx, n_idx = ring.shape[0], ring.shape[0] + 1
    # uvs: rings with n_lon + 1 columns, plus one pole uv per column (centred)
    lau, lou = np.meshgrid(lat, lon, indexing="ij")
    ring_uv = np.stack([lou / (2 * np.pi), 0.5 + lau / np.pi], -1).reshape(-1, 2)
    cols = (np.arange(n_lon) + 0.5) / n_lon
    south_uv = np.stack([cols, np.zeros(n_lon)], 1)
    north_uv = np.stack([cols, np.ones(n_lon)], 1)
    uvs = np.concatenate([ring_uv, south_uv, north_uv])
    su0, nu0 = ring_uv.shape[0], ring_uv.shape[0] + n_lon

    nr = lat.size
    faces, uv_faces = [], []
    r, c = np.meshgrid(np.arange(nr - 1), np.arange(n_lon), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % n_lon
    p00, p01 = r * n_lon + c, r * n_lon + c1
    p10, p11 = (r + 1) * n_lon + c, (r + 1) * n_lon + c1
    q00, q01 = r * (n_lon + 1) + c, r * (n_lon + 1) + c + 1
    q10, q11 = (r + 1) * (n_lon + 1) + c, (r + 1) * (n_lon + 1) + c + 1
    # ring r is below ring r + 1; going +c is toward +x from +z (counter-clockwise seen from +y)
    faces += [np.stack([p00, p01, p11], 1), np.stack([p00, p11, p10], 1)]
    uv_faces += [np.stack([q00, q01, q11], 1), np.stack([q00, q11, q10], 1)]
    c = np.arange(n_lon)
    c1 = (c + 1) % n_lon
    top = (nr - 1) * n_lon
    faces += [np.stack([np.full(n_lon, s_idx), c1, c], 1), np.stack([top + c, top + c1, np.full(n_lon, n_idx)], 1)]
    topu = (nr - 1) * (n_lon + 1)
    uv_faces += [np.stack([su0 + c, c + 1, c], 1), np.stack([topu + c, topu + c + 1, nu0 + c], 1)]
    faces = np.concatenate(faces)
    uv_faces = np.concatenate(uv_faces)
    # make the winding counter-clockwise seen from outside
    t = verts[faces]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    flip = np.einsum("ij,ij->i", n, t.mean(1)) < 0
    faces[flip] = faces[flip][:, ::-1]
    uv_faces[flip] = uv_faces[flip][:, ::-1]
    return (verts.astype(np.float32), faces.astype(np.int32), uvs.astype(np.float32),
            uv_faces.astype(np.int32))


def grid(n_rows: int, n_cols: int, *, width: float = 1.0, height: float = 1.0):
    """Flat rectangle in the z = 0 plane facing +z, centred at the origin, with UVs ``u = x / width +
    0.5``, ``v = y / height + 0.5`` (one UV per vertex).

    Returns:
      ``(vertices (V, 3) float32, faces (F, 3) int32, uvs (V, 2) float32)``.
    """
    ys, xs = np.meshgrid(np.linspace(0, 1, n_rows + 1), np.linspace(0, 1, n_cols + 1), indexing="ij")
    uvs = np.stack([xs, ys], -1).reshape(-1, 2)
    verts = np.stack([(xs - 0.5) * width, (ys - 0.5) * height, np.zeros_like(xs)], -1).reshape(-1, 3)
    r, c = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    r, c = r.ravel(), c.ravel()
    a = r * (n_cols + 1) + c
    b, d, e = a + 1, a + n_cols + 1, a + n_cols + 2
    faces = np.concatenate([np.stack([a, b, e], 1), np.stack([a, e, d], 1)])
    return verts.astype(np.float32), faces.astype(np.int32), uvs.astype(np.float32)
