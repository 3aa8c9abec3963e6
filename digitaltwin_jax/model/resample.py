"""The ``low`` head mesh: a vertex-subset decimation of the full ICT head (paper, Table 2 / Fig. 1).

The paper ships "a shape model with low polygon count" (2.9K vertices, 5.8K faces) with a
high-resolution UV texture.  We derive ours from the full ICT head surface once, at asset-build time,
so that it is a *fixed sparse linear resampling* of the full mesh: ``low = W @ full`` for the mean
head, every identity mode and every blendshape.

Method (chosen over "pyfqmr + projection"; see ``decimate_mesh``):
  *Half-edge-collapse quadric decimation* (Garland & Heckbert 1997 error quadrics, with the collapse
  restricted to an existing endpoint, as in "vertex removal").  A collapse ``u -> v`` deletes full
  vertex ``u`` and reconnects its faces to its neighbour ``v``; nothing is ever moved.  Hence
    * every low vertex IS a full vertex: ``W`` is a selection matrix (each row one-hot, trivially a
      barycentric combination with weights (1, 0, 0) in a full triangle containing the vertex), and
      identity modes / blendshapes transfer exactly;
    * required vertices (68 landmarks, 2 x 17 extended jawline candidates, nose tip, 7 evaluation
      landmarks) are simply never removed, so they coincide with their full counterparts exactly;
    * UVs are exact full UVs.  UV seams and mesh borders are kept as *feature lines*: a vertex with no
      feature edge may collapse along any edge; a vertex on a feature line (exactly two feature edges)
      may only slide along that line into a neighbour on the same line; feature corners (any other
      number of feature edges) are locked.  The UV corners of the reconnected faces are remapped
      chart-consistently (``uv(u) -> uv(v)`` read off the faces sharing the edge ``u v``), so every
      low triangle lies within one UV chart with the UV corners of its full vertices.
  pyfqmr instead relocates vertices (optimal-position QEM) and cannot lock single vertices, which
  needs a projection + snapping pass afterwards and gives dense barycentric rows; the subset
  approach needs neither.

  Each candidate collapse must keep the mesh a manifold (the link condition; no face created
  twice), keep every reconnected face non-degenerate in 3D and in UV, keep its UV orientation, keep
  its normal within ``max_normal_change_deg`` of the face it replaces and on the outside of the full
  mesh's vertex normals at its corners (no flips), and not make the worst aspect ratio of the fan
  worse than ``max(max_aspect_ratio, current worst)``.  Valid collapses are ordered by
  ``importance * (quadric error + length_weight * fan area * |u - v|^2)``: the quadric error keeps
  curved regions dense, the length term spreads vertices evenly over flat regions, and
  ``build_low_asset`` sets ``importance`` to 20 within 95 mm of the nose tip (1 elsewhere), so the
  face keeps about half of the vertices (ICT's back of the head is already coarse and would
  otherwise keep more than its share).  After the collapses, optional edge flips (inside one chart,
  nearly coplanar faces only) raise the minimum angle (``flip_max_dihedral_deg``); they change
  connectivity only, so ``W`` is unchanged.

On the ICT head (11,248 -> 2,900 vertices, 5,698 faces) this takes ~15 s; the low surface is within
0.19 mm of the full one on average (max 2.1 mm; 0.14 mm mean / 0.9 mm max on the face) and its
triangles are about as good as the full mesh's (smallest angle, 1st percentile: 17.6 vs 16.6 deg;
aspect ratio 99th percentile: 2.6 vs 2.1).  :func:`~digitaltwin_jax.model.low_asset.build_low_asset`
returns these statistics.

The asset build around it (selection weights, quality statistics, masks) is in
:mod:`digitaltwin_jax.model.low_asset`.
"""
from __future__ import annotations

import dataclasses
import heapq
import math

import numpy as np

from digitaltwin_jax.geometry.mesh import vertex_normals_np

__all__ = [
    "DecimationConfig",
    "Decimation",
    "decimate_mesh",
]


@dataclasses.dataclass(frozen=True)
class DecimationConfig:
    """Settings of :func:`decimate_mesh` (defaults tuned on the ICT head, 11,248 -> 2,900 vertices).

    Attributes:
      feature_weight: weight of the constraint planes (through a feature edge, perpendicular to its
        face) that keep UV seams and borders in place, relative to face planes.
      length_weight: weight of the ``fan area * |u - v|^2`` regulariser in the collapse cost.
      max_aspect_ratio: a collapse may not create a face with circumradius / (2 inradius) above
        ``max(max_aspect_ratio, worst ratio of the faces it replaces)``.
      max_normal_change_deg: largest normal rotation of a reconnected face.
      min_full_normal_dot: every low face normal must have a dot product above this with the full
        mesh's vertex normals at its three corners (0 = no flips).
      flip_max_dihedral_deg: edge flips that raise the minimum angle are applied between faces of one
        chart whose normals differ by less than this (0 disables flipping).
    """

    feature_weight: float = 100.0
    length_weight: float = 0.05
    max_aspect_ratio: float = 3.0
    max_normal_change_deg: float = 45.0
    min_full_normal_dot: float = 0.0
    flip_max_dihedral_deg: float = 20.0


@dataclasses.dataclass(frozen=True)
class Decimation:
    """Result of :func:`decimate_mesh`.

    Attributes:
      vertex_indices: ``(Vl,) int64`` full vertex of each low vertex (ascending).
      faces: ``(Fl, 3) int32`` low triangles into the low vertices (same orientation as the full mesh).
      uv_indices: ``(Tl,) int64`` full uv index of each low uv (ascending).
      uv_faces: ``(Fl, 3) int32`` low triangles into the low uvs (``full_uvs[uv_indices]``).
      num_collapses: number of half-edge collapses performed.
      num_flips: number of edge flips performed.
    """

    vertex_indices: np.ndarray
    faces: np.ndarray
    uv_indices: np.ndarray
    uv_faces: np.ndarray
    num_collapses: int
    num_flips: int


# --------------------------------------------------------------------------------------------------
# small pure-python vector helpers (the decimator works on 3-tuples; numpy is slow for 3-vectors)


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _tri_normal_area2(p0, p1, p2):
    """(unnormalised normal, twice the area)."""
    n = _cross(_sub(p1, p0), _sub(p2, p0))
    return n, math.sqrt(_dot(n, n))


def _aspect(p0, p1, p2):
    """Circumradius / (2 inradius): 1 for an equilateral triangle, inf when degenerate."""
    a = math.dist(p1, p2)
    b = math.dist(p0, p2)
    c = math.dist(p0, p1)
    s = 0.5 * (a + b + c)
    prod = (s - a) * (s - b) * (s - c)
    if prod <= 0.0:
        return math.inf
    # R = abc / (4 area), r = area / s, area^2 = s prod  ->  R / (2 r) = abc / (8 prod)
    return a * b * c / (8.0 * prod)


def _uv_area2(t0, t1, t2):
    return (t1[0] - t0[0]) * (t2[1] - t0[1]) - (t1[1] - t0[1]) * (t2[0] - t0[0])


def _quadric_eval(q, p):
    x, y, z = p
    return (
        q[0] * x * x + 2 * q[1] * x * y + 2 * q[2] * x * z + 2 * q[3] * x
        + q[4] * y * y + 2 * q[5] * y * z + 2 * q[6] * y
        + q[7] * z * z + 2 * q[8] * z + q[9]
    )


def _plane_quadrics(normals: np.ndarray, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(N, 10)`` quadrics ``w (n.x + d)^2`` of planes with unit ``normals`` through ``points``."""
    a, b, c = normals[:, 0], normals[:, 1], normals[:, 2]
    d = -np.einsum("ij,ij->i", normals, points)
    q = np.stack([a * a, a * b, a * c, a * d, b * b, b * c, b * d, c * c, c * d, d * d], axis=1)
    return q * weights[:, None]


def _check_mesh_inputs(vertices, faces, uvs, uv_faces):
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    t = np.asarray(uvs, dtype=np.float64)
    tf = np.asarray(uv_faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices contain NaN or inf")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}")
    if tf.shape != f.shape or not np.issubdtype(tf.dtype, np.integer):
        raise ValueError(f"uv_faces must be an integer array of shape {f.shape}, got {tf.shape} {tf.dtype}")
    if t.ndim != 2 or t.shape[1] != 2 or not np.all(np.isfinite(t)):
        raise ValueError(f"uvs must be a finite (T, 2) array, got {t.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError("faces reference vertices out of range")
    if tf.size and (tf.min() < 0 or tf.max() >= len(t)):
        raise ValueError("uv_faces reference uvs out of range")
    if np.any((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])):
        raise ValueError("faces contain degenerate triangles (repeated vertex)")
    area2 = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    if np.any(area2 <= 0):
        raise ValueError(f"{int(np.sum(area2 <= 0))} faces have zero area (degenerate faces)")
    return v, f.astype(np.int64), t, tf.astype(np.int64)


class _Decimator:
    """Mutable half-edge-collapse state (private; see :func:`decimate_mesh`)."""

    def __init__(self, v, f, t, tf, locked, importance, cfg: DecimationConfig):
        self.cfg = cfg
        self.P = [tuple(p) for p in v.tolist()]
        self.UV = [tuple(p) for p in t.tolist()]
        self.F = [list(x) for x in f.tolist()]
        self.T = [list(x) for x in tf.tolist()]
        self.face_alive = [True] * len(self.F)
        self.vf = [set() for _ in range(len(v))]
        for i, (a, b, c) in enumerate(self.F):
            self.vf[a].add(i)
            self.vf[b].add(i)
            self.vf[c].add(i)
        self.locked = np.zeros(len(v), dtype=bool)
        self.locked[locked] = True
        self.locked = self.locked.tolist()
        self.importance = importance.tolist()
        self.NF = [tuple(n) for n in vertex_normals_np(v, f).tolist()]
        self.cos_normal = math.cos(math.radians(cfg.max_normal_change_deg))
        self.n_alive = sum(1 for s in self.vf if s)
        self.Q = self._initial_quadrics(v, f, tf).tolist()

    # ---- setup --------------------------------------------------------------------------------
    def _initial_quadrics(self, v, f, tf):
        e1 = v[f[:, 1]] - v[f[:, 0]]
        e2 = v[f[:, 2]] - v[f[:, 0]]
        fn = np.cross(e1, e2)
        area = 0.5 * np.linalg.norm(fn, axis=1)
        unit = fn / (2.0 * area[:, None])
        fq = _plane_quadrics(unit, v[f[:, 0]], area)
        Q = np.zeros((len(v), 10))
        for k in range(3):
            np.add.at(Q, f[:, k], fq)
        # feature edges: borders (one face) and UV seams (corner uvs differ across the edge)
        edge_faces: dict = {}
        for fi in range(len(f)):
            for k in range(3):
                a, b = int(f[fi, k]), int(f[fi, (k + 1) % 3])
                edge_faces.setdefault((min(a, b), max(a, b)), []).append((fi, k))
        rows_n, rows_p, rows_w, ends = [], [], [], []
        for (a, b), lst in edge_faces.items():
            if len(lst) > 2:
                raise ValueError(f"non-manifold edge ({a}, {b}) shared by {len(lst)} faces")
            feature = len(lst) == 1
            if not feature:
                uv_sets = []
                for fi, k in lst:
                    ca = k if f[fi, k] == a else (k + 1) % 3
                    cb = (k + 1) % 3 if ca == k else k
                    uv_sets.append((tf[fi, ca], tf[fi, cb]))
                feature = uv_sets[0] != uv_sets[1]
            if not feature:
                continue
            e = v[b] - v[a]
            length2 = float(e @ e)
            for fi, _ in lst:
                m = np.cross(e, unit[fi])
                nm = np.linalg.norm(m)
                if nm > 0:
                    rows_n.append(m / nm)
                    rows_p.append(v[a])
                    rows_w.append(self.cfg.feature_weight * length2)
                    ends.append((a, b))
        if rows_n:
            cq = _plane_quadrics(np.array(rows_n), np.array(rows_p), np.array(rows_w))
            ends = np.array(ends)
            np.add.at(Q, ends[:, 0], cq)
            np.add.at(Q, ends[:, 1], cq)
        return Q

    # ---- queries -------------------------------------------------------------------------------
    def _uv_of(self, fi, vert):
        F = self.F[fi]
        return self.T[fi][0 if F[0] == vert else (1 if F[1] == vert else 2)]

    def _neighbours(self, u):
        nb: dict = {}
        for fi in self.vf[u]:
            for w in self.F[fi]:
                if w != u:
                    nb.setdefault(w, []).append(fi)
        return nb

    def _feature_neighbours(self, u, nb):
        feat = []
        for w, fl in nb.items():
            if len(fl) == 1:
                feat.append(w)
            elif len(fl) == 2:
                f1, f2 = fl
                if self._uv_of(f1, u) != self._uv_of(f2, u) or self._uv_of(f1, w) != self._uv_of(f2, w):
                    feat.append(w)
            else:
                return None
        return feat

    def best_collapse(self, u):
        """(cost, v) of the cheapest valid collapse of ``u``, or None."""
        if self.locked[u] or not self.vf[u]:
            return None
        nb = self._neighbours(u)
        feat = self._feature_neighbours(u, nb)
        if feat is None:
            return None
        if len(feat) == 0:
            cands = list(nb)
        elif len(feat) == 2:
            cands = feat
        else:
            return None
        P, cfg = self.P, self.cfg
        pu = P[u]
        # current fan: worst aspect ratio, face normals and total area
        fan = list(self.vf[u])
        old = {}
        worst = 1.0
        area = 0.0
        for fi in fan:
            a, b, c = self.F[fi]
            n, a2 = _tri_normal_area2(P[a], P[b], P[c])
            old[fi] = (n, a2)
            area += 0.5 * a2
            worst = max(worst, _aspect(P[a], P[b], P[c]))
        limit = max(cfg.max_aspect_ratio, worst)
        qu = self.Q[u]
        best = None
        for v in cands:
            if len(feat) == 2:
                other = feat[0] if feat[1] == v else feat[1]
                if other == v:
                    continue
            shared = nb[v]
            # link condition
            opp = set()
            for fi in shared:
                for w in self.F[fi]:
                    if w != u and w != v:
                        opp.add(w)
            nv = set()
            for fi in self.vf[v]:
                nv.update(self.F[fi])
            nv.discard(v)
            common = nv.intersection(nb)
            if common != opp:
                continue
            if len(feat) == 2 and other in nv:
                continue
            # chart-consistent uv remap uv(u) -> uv(v)
            uvmap: dict = {}
            ok = True
            for fi in shared:
                tu, tv = self._uv_of(fi, u), self._uv_of(fi, v)
                if uvmap.setdefault(tu, tv) != tv:
                    ok = False
                    break
            if not ok:
                continue
            pv = P[v]
            for fi in fan:
                if fi in shared:
                    continue
                F = self.F[fi]
                k = 0 if F[0] == u else (1 if F[1] == u else 2)
                tu = self.T[fi][k]
                if tu not in uvmap:
                    ok = False
                    break
                pts = [P[F[0]], P[F[1]], P[F[2]]]
                pts[k] = pv
                n, a2 = _tri_normal_area2(pts[0], pts[1], pts[2])
                n0, a20 = old[fi]
                if a2 <= 1e-12 * (a20 + 1e-30) or a2 == 0.0:
                    ok = False
                    break
                if _dot(n, n0) < self.cos_normal * a2 * a20:
                    ok = False
                    break
                verts = list(F)
                verts[k] = v
                b, c = verts[(k + 1) % 3], verts[(k + 2) % 3]
                if any(v in self.F[g] for g in self.vf[b] & self.vf[c]):
                    ok = False  # the face (v, b, c) exists already (tetrahedral spike)
                    break
                thr = cfg.min_full_normal_dot * a2
                if (_dot(n, self.NF[verts[0]]) <= thr or _dot(n, self.NF[verts[1]]) <= thr
                        or _dot(n, self.NF[verts[2]]) <= thr):
                    ok = False
                    break
                if _aspect(pts[0], pts[1], pts[2]) > limit:
                    ok = False
                    break
                tris = [self.UV[x] for x in self.T[fi]]
                before = _uv_area2(*tris)
                tris[k] = self.UV[uvmap[tu]]
                after = _uv_area2(*tris)
                if after == 0.0 or (after > 0) != (before > 0):
                    ok = False
                    break
            if not ok:
                continue
            qv = self.Q[v]
            err = _quadric_eval(qu, pv) + _quadric_eval(qv, pv)
            d2 = (pu[0] - pv[0]) ** 2 + (pu[1] - pv[1]) ** 2 + (pu[2] - pv[2]) ** 2
            cost = max(self.importance[u], self.importance[v]) * (max(err, 0.0) + cfg.length_weight * area * d2)
            if best is None or cost < best[0]:
                best = (cost, v)
        return best

    def collapse(self, u, v):
        nb = self._neighbours(u)
        shared = nb[v]
        uvmap = {self._uv_of(fi, u): self._uv_of(fi, v) for fi in shared}
        for fi in shared:
            self.face_alive[fi] = False
            for w in self.F[fi]:
                self.vf[w].discard(fi)
        for fi in list(self.vf[u]):
            F = self.F[fi]
            k = 0 if F[0] == u else (1 if F[1] == u else 2)
            F[k] = v
            self.T[fi][k] = uvmap[self.T[fi][k]]
            self.vf[v].add(fi)
        self.vf[u] = set()
        self.Q[v] = [a + b for a, b in zip(self.Q[v], self.Q[u])]
        self.n_alive -= 1

    # ---- edge flips ------------------------------------------------------------------------------
    def flip_pass(self):
        """One sweep of min-angle-improving flips; returns the number of flips."""
        cos_dih = math.cos(math.radians(self.cfg.flip_max_dihedral_deg))
        P = self.P
        flips = 0
        edges = {}
        for fi, alive in enumerate(self.face_alive):
            if not alive:
                continue
            F = self.F[fi]
            for k in range(3):
                a, b = F[k], F[(k + 1) % 3]
                edges.setdefault((min(a, b), max(a, b)), []).append(fi)
        for (a, b), fl in edges.items():
            if len(fl) != 2:
                continue
            f1, f2 = fl
            if not (self.face_alive[f1] and self.face_alive[f2]):
                continue
            F1, F2 = self.F[f1], self.F[f2]
            if a not in F1 or b not in F1 or a not in F2 or b not in F2:
                continue  # the edge changed in an earlier flip of this sweep
            if self._uv_of(f1, a) != self._uv_of(f2, a) or self._uv_of(f1, b) != self._uv_of(f2, b):
                continue  # UV seam
            # orient: F1 = (x, y, c) with edge x -> y; F2 has y -> x and apex d
            k1 = F1.index(a)
            if F1[(k1 + 1) % 3] == b:
                x, y = a, b
            else:
                x, y = b, a
            c = next(w for w in F1 if w != x and w != y)
            d = next(w for w in F2 if w != x and w != y)
            if c == d or any(d in self.F[g] for g in self.vf[c]):
                continue  # edge c-d exists already
            n1, s1 = _tri_normal_area2(P[x], P[y], P[c])
            n2, s2 = _tri_normal_area2(P[y], P[x], P[d])
            if _dot(n1, n2) < cos_dih * s1 * s2:
                continue
            # new faces (c, x, d) and (d, y, c)
            m1, t1 = _tri_normal_area2(P[c], P[x], P[d])
            m2, t2 = _tri_normal_area2(P[d], P[y], P[c])
            if t1 <= 1e-12 or t2 <= 1e-12:
                continue
            nsum = (n1[0] + n2[0], n1[1] + n2[1], n1[2] + n2[2])
            if _dot(m1, nsum) <= 0 or _dot(m2, nsum) <= 0:
                continue
            if _dot(m1, n1) < cos_dih * t1 * s1 or _dot(m2, n2) < cos_dih * t2 * s2:
                continue
            thr1 = self.cfg.min_full_normal_dot * t1
            thr2 = self.cfg.min_full_normal_dot * t2
            if any(_dot(m1, self.NF[w]) <= thr1 for w in (c, x, d)) or any(
                _dot(m2, self.NF[w]) <= thr2 for w in (d, y, c)
            ):
                continue
            before = min(_min_angle(P[x], P[y], P[c]), _min_angle(P[y], P[x], P[d]))
            after = min(_min_angle(P[c], P[x], P[d]), _min_angle(P[d], P[y], P[c]))
            if after <= before + 1e-9:
                continue
            tx, ty, tc, td = self._uv_of(f1, x), self._uv_of(f1, y), self._uv_of(f1, c), self._uv_of(f2, d)
            uv_before = _uv_area2(self.UV[tx], self.UV[ty], self.UV[tc])
            ua = _uv_area2(self.UV[tc], self.UV[tx], self.UV[td])
            ub = _uv_area2(self.UV[td], self.UV[ty], self.UV[tc])
            if ua == 0 or ub == 0 or (ua > 0) != (uv_before > 0) or (ub > 0) != (uv_before > 0):
                continue
            for w in (x, y, c, d):
                self.vf[w].discard(f1)
                self.vf[w].discard(f2)
            self.F[f1], self.T[f1] = [c, x, d], [tc, tx, td]
            self.F[f2], self.T[f2] = [d, y, c], [td, ty, tc]
            for w in (c, x, d):
                self.vf[w].add(f1)
            for w in (d, y, c):
                self.vf[w].add(f2)
            flips += 1
        return flips


def _min_angle(p0, p1, p2):
    a = math.dist(p1, p2)
    b = math.dist(p0, p2)
    c = math.dist(p0, p1)
    m = min(a, b, c)
    # the smallest angle faces the shortest side
    if m == a:
        o1, o2 = b, c
    elif m == b:
        o1, o2 = a, c
    else:
        o1, o2 = a, b
    cosv = (o1 * o1 + o2 * o2 - m * m) / (2 * o1 * o2) if o1 * o2 > 0 else 1.0
    return math.acos(max(-1.0, min(1.0, cosv)))


def decimate_mesh(
    vertices,
    faces,
    uvs,
    uv_faces,
    target_vertices: int,
    *,
    locked=None,
    importance=None,
    config: DecimationConfig = DecimationConfig(),
) -> Decimation:
    """Decimate a UV-mapped manifold triangle mesh to a subset of its vertices (half-edge collapses).

    Args:
      vertices: ``(V, 3) float`` positions.
      faces: ``(F, 3) int`` triangles (consistently oriented, edge-manifold, no degenerate faces).
      uvs: ``(T, 2) float`` texture coordinates.
      uv_faces: ``(F, 3) int`` triangles into ``uvs`` (UV seams are where these differ across an edge).
      target_vertices: stop when this many vertices remain (or no valid collapse is left).
      locked: ``(L,) int`` vertices that must be kept (never removed).
      importance: ``(V,) float > 0`` multiplies the collapse cost of a vertex (larger = kept denser).
      config: :class:`DecimationConfig`.

    Returns:
      :class:`Decimation` (kept full vertex/uv indices and the low faces / uv faces).

    Raises:
      ValueError: bad shapes, out-of-range indices, degenerate or non-manifold faces, a target below
        the number of locked vertices.
    """
    v, f, t, tf = _check_mesh_inputs(vertices, faces, uvs, uv_faces)
    locked = np.unique(np.asarray([] if locked is None else locked, dtype=np.int64).ravel())
    if locked.size and (locked.min() < 0 or locked.max() >= len(v)):
        raise ValueError("locked vertex indices out of range")
    if importance is None:
        importance = np.ones(len(v))
    importance = np.asarray(importance, dtype=np.float64)
    if importance.shape != (len(v),) or not np.all(np.isfinite(importance)) or np.any(importance <= 0):
        raise ValueError(f"importance must be a positive finite ({len(v)},) array")
    target_vertices = int(target_vertices)
    if target_vertices < max(3, locked.size):
        raise ValueError(f"target_vertices={target_vertices} is below the {locked.size} locked vertices (or 3)")

    dec = _Decimator(v, f, t, tf, locked, importance, config)
    stamp = [0] * len(v)
    heap = []
    for u in range(len(v)):
        r = dec.best_collapse(u)
        if r is not None:
            heap.append((r[0], u, r[1], 0))
    heapq.heapify(heap)
    collapses = 0
    while dec.n_alive > target_vertices and heap:
        cost, u, tgt, s = heapq.heappop(heap)
        if s != stamp[u] or not dec.vf[u]:
            continue
        r = dec.best_collapse(u)  # re-validate (cheap insurance against stale neighbourhoods)
        if r is None:
            stamp[u] += 1
            continue
        if r[1] != tgt or r[0] > cost * (1 + 1e-9) + 1e-300:
            stamp[u] += 1
            heapq.heappush(heap, (r[0], u, r[1], stamp[u]))
            continue
        dec.collapse(u, tgt)
        collapses += 1
        stamp[u] += 1
        touched = set()
        for fi in dec.vf[tgt]:
            touched.update(dec.F[fi])
        for w in touched:
            stamp[w] += 1
            r = dec.best_collapse(w)
            if r is not None:
                heapq.heappush(heap, (r[0], w, r[1], stamp[w]))

    flips = 0
    if config.flip_max_dihedral_deg > 0:
        for _ in range(10):
            n = dec.flip_pass()
            flips += n
            if n == 0:
                break

    alive = [i for i, a in enumerate(dec.face_alive) if a]
    lf = np.asarray([dec.F[i] for i in alive], dtype=np.int64).reshape(-1, 3)
    lt = np.asarray([dec.T[i] for i in alive], dtype=np.int64).reshape(-1, 3)
    keep = np.unique(lf)
    keep = np.union1d(keep, locked)  # a locked isolated vertex would otherwise vanish
    vmap = np.full(len(v), -1, dtype=np.int64)
    vmap[keep] = np.arange(len(keep))
    uv_keep = np.unique(lt)
    tmap = np.full(len(t), -1, dtype=np.int64)
    tmap[uv_keep] = np.arange(len(uv_keep))
    return Decimation(
        vertex_indices=keep,
        faces=vmap[lf].astype(np.int32),
        uv_indices=uv_keep,
        uv_faces=tmap[lt].astype(np.int32),
        num_collapses=collapses,
        num_flips=flips,
    )
