"""Geometry benchmarks: cotangent Laplacian build vs scipy and libigl; DR encode / decode.

Laplacian: the 3K head, and the full ICT head (11K vertices) midpoint-subdivided once (45K) and
three times (713K; skipped with --quick); ours is the jitted BCOO build (compile excluded),
"scipy" a vectorised numpy + scipy.sparse cotmatrix (coo -> csr), "libigl" ``igl.cotmatrix`` when the
``libigl`` wheel is importable (skipped otherwise).  DR: encode / decode per shape on the low (3K)
and full (11K) head, single shape and batched (prepare and compile excluded).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

AREA = "geometry"


def _time(fn, repeat: int) -> float:
    fn()  # warm up / compile
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.min(ts))


def scipy_cotmatrix(v, f):
    """Vectorised numpy / scipy.sparse reference (libigl convention)."""
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, o = f[:, (k + 1) % 3], f[:, (k + 2) % 3], f[:, k]
        a, b = v[i] - v[o], v[j] - v[o]
        cot = np.einsum("ij,ij->i", a, b) / np.linalg.norm(np.cross(a, b), axis=1)
        w = 0.5 * cot
        rows += [i, j, i, j]
        cols += [j, i, i, j]
        vals += [w, w, -w, -w]
    n = v.shape[0]
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()


def _subdivide(v, f):
    """One step of midpoint (1-to-4) subdivision."""
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(axis=1)
    uniq, inv = np.unique(e, axis=0, return_inverse=True)
    mid = v.shape[0] + inv.reshape(3, -1).T  # (F, 3): midpoints of edges 01, 12, 20
    v2 = np.concatenate([v, 0.5 * (v[uniq[:, 0]] + v[uniq[:, 1]])])
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = mid[:, 0], mid[:, 1], mid[:, 2]
    f2 = np.concatenate([np.stack([a, m01, m20], 1), np.stack([b, m12, m01], 1),
                         np.stack([c, m20, m12], 1), np.stack([m01, m12, m20], 1)])
    return v2, f2.astype(np.int32)


def _meshes(quick: bool):
    from digitaltwin_jax import load_head_model

    out = []
    low = load_head_model("low")
    out.append(("3K head", low.vertices.astype(np.float64), low.faces))
    full = load_head_model("full")
    v, f = full.vertices.astype(np.float64), full.faces
    v, f = _subdivide(v, f)
    out.append((f"{v.shape[0] // 1000}K head (subdiv.)", v, f))
    if not quick:
        v, f = _subdivide(*_subdivide(v, f))
        out.append((f"{v.shape[0] // 1000}K head (subdiv.)", v, f))
    return out, low, full


def run(quick: bool = False) -> list[dict]:
    from digitaltwin_jax.geometry import cotangent_laplacian, prepare_dr

    try:
        import igl
    except ImportError:  # libigl is optional
        igl = None
    rows = []
    meshes, low, full = _meshes(quick)
    lap = jax.jit(cotangent_laplacian)
    for name, v, f in meshes:
        rep = 3 if v.shape[0] > 100_000 else 10
        vj, fj = jnp.asarray(v, jnp.float32), jnp.asarray(f, jnp.int32)
        ours = _time(lambda: jax.block_until_ready(lap(vj, fj)), rep)
        t_sp = _time(lambda: scipy_cotmatrix(v, f), rep)
        rows.append(dict(area=AREA, case=f"cotangent Laplacian {name} ({v.shape[0]} V)", ours_ms=ours,
                         baseline="scipy.sparse", baseline_ms=t_sp, target="<= libigl at 50K / 500K",
                         notes="jit, compile excluded; BCOO with 9F duplicate entries"))
        if igl is not None:
            t_igl = _time(lambda: igl.cotmatrix(v, f), rep)
            rows.append(dict(area=AREA, case=f"cotangent Laplacian {name} ({v.shape[0]} V)", ours_ms=ours,
                             baseline="libigl cotmatrix", baseline_ms=t_igl, target="<= libigl at 50K / 500K",
                             notes="float64 CSC in libigl, float32 BCOO ours"))
    for name, model in (("3K head", low), ("11K head", full)):
        dr = prepare_dr(model.vertices, model.faces)
        rng = np.random.default_rng(0)
        batch = 64 if name == "3K head" else 16
        shapes = (model.vertices[None] + np.tensordot(rng.normal(size=(batch, 100)), model.identity_basis, 1)).astype(np.float32)
        feats = dr.encode(shapes)
        one_f = feats[0]
        t_enc1 = _time(lambda: jax.block_until_ready(dr.encode(shapes[0])), 5)
        t_encb = _time(lambda: jax.block_until_ready(dr.encode(shapes)), 3) / batch
        t_dec1 = _time(lambda: jax.block_until_ready(dr.decode(one_f)), 5)
        t_decb = _time(lambda: jax.block_until_ready(dr.decode(feats)), 3) / batch
        rows += [
            dict(area=AREA, case=f"DR encode {name}, 1 shape", ours_ms=t_enc1, target="<= 5 ms at 3K", notes="after prepare_dr"),
            dict(area=AREA, case=f"DR encode {name}, per shape in batch {batch}", ours_ms=t_encb, target="<= 5 ms at 3K"),
            dict(area=AREA, case=f"DR decode {name}, 1 shape", ours_ms=t_dec1, target="<= 0.5 ms/shape at 3K"),
            dict(area=AREA, case=f"DR decode {name}, per shape in batch {batch}", ours_ms=t_decb, target="<= 0.5 ms/shape at 3K",
                 notes="block-tridiagonal Cholesky, one multi-column solve"),
        ]
    return rows
