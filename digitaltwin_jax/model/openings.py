"""Eye and mouth openings of the head mesh: its boundary loops matched to the landmarks.

The head asset has no eyeballs, teeth or mouth cavity (the paper removes them, section 3.2): its eye
and mouth openings are holes, i.e. boundary loops of the mesh (the fourth loop is the neck).  The
synthetic renderer closes them with caps or sphere eyeballs (:mod:`digitaltwin_jax.synth.eyes`) and
the avatar places its eyeballs behind them (:mod:`digitaltwin_jax.texture.eyes`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["boundary_loops", "Openings", "find_openings"]


def boundary_loops(faces) -> list[np.ndarray]:
    """Boundary loops of a triangle mesh, each ``(n,) int64`` in the faces' winding order
    (edge ``a -> b`` of a loop is an edge ``a -> b`` of its single incident face)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    bd = e[cnt[inv.ravel()] == 1]
    nxt = {}
    for a, b in bd:
        if int(a) in nxt:
            raise ValueError(f"non-manifold boundary at vertex {int(a)}")
        nxt[int(a)] = int(b)
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        cur = nxt[start]
        while cur != start:
            if cur in seen or cur not in nxt:
                raise ValueError("boundary edges do not form closed loops")
            loop.append(cur)
            seen.add(cur)
            cur = nxt[cur]
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


@dataclasses.dataclass(frozen=True)
class Openings:
    """Boundary loops of the eye and mouth openings (vertex indices, faces' winding order).

    Attributes:
      eye_right: subject's right eye (landmarks 36-41); eye_left: landmarks 42-47; mouth: 60-67.
    """

    eye_right: np.ndarray
    eye_left: np.ndarray
    mouth: np.ndarray


def find_openings(vertices, faces, landmark_indices) -> Openings:
    """Match the mesh's boundary loops to the eye and mouth landmark centroids (nearest loop
    centroid, within 15 mm; ValueError otherwise)."""
    v = np.asarray(vertices, dtype=np.float64)
    lm = v[np.asarray(landmark_indices)]
    loops = boundary_loops(faces)
    cents = np.array([v[lp].mean(axis=0) for lp in loops])
    out = []
    for name, sl in (("eye_right", slice(36, 42)), ("eye_left", slice(42, 48)), ("mouth", slice(60, 68))):
        target = lm[sl].mean(axis=0)
        d = np.linalg.norm(cents - target, axis=1)
        k = int(np.argmin(d))
        if d[k] > 15.0:
            raise ValueError(f"no mesh opening near the {name} landmarks (nearest loop {d[k]:.1f} mm away)")
        out.append(loops[k])
    return Openings(*out)
