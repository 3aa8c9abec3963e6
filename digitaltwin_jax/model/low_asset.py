"""The ``low`` head asset from the full one: the decimation (:mod:`digitaltwin_jax.model.resample`)
plus its selection weights, quality statistics and masks (paper, Table 2 / Fig. 1).

Masks of the low mesh (``build_low_asset``): ``face_mask``/``face_weights`` are recomputed from the
distance to the (exactly kept) nose tip on the low vertices (<= 95 mm -> weight 5, paper section 3.3);
``eye_mask``, ``outer_surface_mask`` and ``visibility`` are the full values of the selected vertex (for a
selection, "interpolated visibility >= 0.04" and "the largest-weight contributor is an eye vertex"
reduce to exactly this).
"""
from __future__ import annotations

import time

import numpy as np

from digitaltwin_jax.geometry.mesh import vertex_normals_np
from digitaltwin_jax.geometry.point_triangle import closest_points_on_triangles
from digitaltwin_jax.model.resample import DecimationConfig, decimate_mesh

__all__ = ["selection_weights", "mesh_quality", "build_low_asset"]


def selection_weights(vertex_indices, faces) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric rows of a vertex selection: each selected vertex as (1, 0, 0) in a full triangle.

    Args:
      vertex_indices: ``(Vl,) int`` selected full vertices.
      faces: ``(F, 3) int`` full triangles.

    Returns:
      ``source_indices (Vl, 3) int32`` (a full triangle containing the vertex, rotated so the vertex
      comes first) and ``source_weights (Vl, 3) float32`` (``[1, 0, 0]``).
    """
    idx = np.asarray(vertex_indices, dtype=np.int64)
    f = np.asarray(faces, dtype=np.int64)
    n = int(max(f.max(), idx.max() if idx.size else 0)) + 1 if f.size else 0
    first_face = np.full(n, len(f), dtype=np.int64)
    np.minimum.at(first_face, f.ravel(), np.repeat(np.arange(len(f)), 3))
    if idx.size and (idx.min() < 0 or np.any(first_face[idx] == len(f))):
        raise ValueError("a selected vertex belongs to no full triangle")
    fi = first_face[idx]
    k = np.argmax(f[fi] == idx[:, None], axis=1)
    src = np.stack([f[fi, k], f[fi, (k + 1) % 3], f[fi, (k + 2) % 3]], axis=1)
    w = np.zeros((len(idx), 3), dtype=np.float32)
    w[:, 0] = 1.0
    return src.astype(np.int32), w


def mesh_quality(vertices, faces, *, reference_normals=None) -> dict:
    """Triangle-quality statistics of a mesh.

    Args:
      vertices: ``(V, 3) float``; faces: ``(F, 3) int``.
      reference_normals: optional ``(V, 3)`` unit normals (e.g. the full mesh's at the same vertices);
        a face is *flipped* when its normal has a non-positive dot product with any corner's.

    Returns:
      dict of floats/ints: ``vertices, faces, min_angle_deg`` (min, 1st percentile, mean of the
      per-face smallest angle), ``frac_min_angle_below_10/20``, ``aspect_ratio_max/p99/mean``
      (circumradius / (2 inradius), 1 = equilateral), ``degenerate_faces`` (zero area),
      ``nonmanifold_edges`` (> 2 faces or repeated directed edge), ``boundary_edges``,
      ``faces_against_normals`` (only with ``reference_normals``).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    p = v[f]
    e = np.stack([np.linalg.norm(p[:, (k + 2) % 3] - p[:, (k + 1) % 3], axis=1) for k in range(3)], axis=1)
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    area = 0.5 * np.linalg.norm(fn, axis=1)
    degenerate = area <= 1e-12 * np.maximum(e.max(axis=1) ** 2, 1e-300)
    # angle opposite edge k by the law of cosines
    angles = []
    for k in range(3):
        a, b, c = e[:, k], e[:, (k + 1) % 3], e[:, (k + 2) % 3]
        cosv = np.clip((b * b + c * c - a * a) / np.maximum(2 * b * c, 1e-300), -1, 1)
        angles.append(np.degrees(np.arccos(cosv)))
    min_angle = np.min(np.stack(angles, axis=1), axis=1)
    s = 0.5 * e.sum(axis=1)
    prod = (s - e[:, 0]) * (s - e[:, 1]) * (s - e[:, 2])
    aspect = np.where(prod > 0, e.prod(axis=1) / np.maximum(8 * prod, 1e-300), np.inf)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, dcount = np.unique(directed, axis=0, return_counts=True)
    und = np.sort(directed, axis=1)
    _, ucount = np.unique(und, axis=0, return_counts=True)
    out = {
        "vertices": int(len(np.unique(f))),
        "faces": int(len(f)),
        "min_angle_deg_min": float(min_angle.min()),
        "min_angle_deg_p1": float(np.percentile(min_angle, 1)),
        "min_angle_deg_mean": float(min_angle.mean()),
        "frac_min_angle_below_10": float(np.mean(min_angle < 10)),
        "frac_min_angle_below_20": float(np.mean(min_angle < 20)),
        "aspect_ratio_max": float(aspect.max()),
        "aspect_ratio_p99": float(np.percentile(aspect, 99)),
        "aspect_ratio_mean": float(aspect[np.isfinite(aspect)].mean()),
        "degenerate_faces": int(degenerate.sum()),
        "nonmanifold_edges": int(np.sum(ucount > 2) + np.sum(dcount > 1)),
        "boundary_edges": int(np.sum(ucount == 1)),
    }
    if reference_normals is not None:
        rn = np.asarray(reference_normals, dtype=np.float64)
        dots = np.einsum("fj,fkj->fk", fn, rn[f])
        out["faces_against_normals"] = int(np.sum(np.any(dots <= 0, axis=1)))
    return out


def _nearest_triangles(points, vertices, faces, k: int = 24):
    """Approximate closest triangle of each point: exact point-triangle distance to the ``k``
    triangles with the nearest centroids.  Returns ``(distance (N,), triangle (N,))``."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    pts = np.asarray(points, dtype=np.float64)
    k = min(k, len(f))
    _, nearest = cKDTree(v[f].mean(axis=1)).query(pts, k=k)
    nearest = nearest.reshape(len(pts), k)
    best = np.full(len(pts), np.inf)
    arg = np.zeros(len(pts), dtype=np.int64)
    for j in range(k):
        tri = f[nearest[:, j]]
        d = np.sqrt(closest_points_on_triangles(pts, v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]])[2])
        better = d < best
        best = np.where(better, d, best)
        arg = np.where(better, nearest[:, j], arg)
    return best, arg


def _flip_checks(full_v, full_f, low_v, low_f, low_to_full):
    """Two orientation checks of the low faces against the full mesh, ``(F_low,) bool`` each.

    * ``vs_corner_faces``: the low normal points against the area-weighted normal of the full faces
      incident to its three corners (the surface it was built from).
    * ``vs_nearest_surface``: against the area-weighted normal of the full faces whose centroids are
      closest to it.  Ambiguous in thin folds (lip corners), where both sides of the fold are close.
    """
    fv, ff = np.asarray(full_v, np.float64), np.asarray(full_f, np.int64)
    lv, lf = np.asarray(low_v, np.float64), np.asarray(low_f, np.int64)
    full_n = np.cross(fv[ff[:, 1]] - fv[ff[:, 0]], fv[ff[:, 2]] - fv[ff[:, 0]])
    low_n = np.cross(lv[lf[:, 1]] - lv[lf[:, 0]], lv[lf[:, 2]] - lv[lf[:, 0]])
    vert_sum = np.zeros_like(fv)
    for k in range(3):
        np.add.at(vert_sum, ff[:, k], full_n)
    corner_ref = vert_sum[np.asarray(low_to_full)[lf]].sum(axis=1)
    _, owner = _nearest_triangles(fv[ff].mean(axis=1), lv, lf)
    near_ref = np.zeros((len(lf), 3))
    np.add.at(near_ref, owner, full_n)
    near_ref = np.where(np.any(near_ref != 0, axis=1, keepdims=True), near_ref, corner_ref)
    return (np.einsum("ij,ij->i", low_n, corner_ref) <= 0,
            np.einsum("ij,ij->i", low_n, near_ref) <= 0)


def build_low_asset(full: dict, *, target_vertices: int = 2900, face_importance: float = 20.0,
                    config: DecimationConfig = DecimationConfig()) -> tuple[dict, dict]:
    """The arrays of ``ict_head_low.npz`` from those of ``ict_head_full.npz``.

    Args:
      full: dict with the full asset's arrays (``vertices, faces, uvs, uv_faces, landmark_indices,
        eval_landmark_indices, contour_right, contour_left, nose_tip_index, eye_mask,
        outer_surface_mask``; ``visibility`` and ``face_weights`` optional).
      target_vertices: vertex count of the low mesh (paper: 2.9K).
      face_importance: collapse-cost multiplier within 95 mm of the nose tip (1 elsewhere), so the
        face keeps a larger share of the vertices than the back of the head.
      config: :class:`DecimationConfig`.

    Returns:
      ``(low, stats)``: ``low`` holds ``faces (Fl,3) int32, uvs (Tl,2) float32, uv_faces (Fl,3) int32,
      source_indices (Vl,3) int32, source_weights (Vl,3) float32, full_vertex_indices (Vl,) int32,
      landmark_indices (68,), eval_landmark_indices (7,), contour_right, contour_left (17,) int32,
      nose_tip_index, face_weights (Vl,) float32, face_mask, eye_mask, outer_surface_mask (Vl,) bool,
      visibility (Vl,) float32`` (all vertex indices into the low mesh; no bases or names:
      :func:`~digitaltwin_jax.model.head_model.load_head_model` computes them as ``W @ full``);
      ``stats`` is a JSON-friendly dict (counts, quality, deviation from the full surface, timing).
    """
    from digitaltwin_jax.model.head_model import FACE_RADIUS_MM, FACE_WEIGHT

    t0 = time.perf_counter()
    v = np.asarray(full["vertices"], dtype=np.float64)
    f = np.asarray(full["faces"], dtype=np.int64)
    nose = int(full["nose_tip_index"])
    required = {
        "landmark_indices": np.asarray(full["landmark_indices"], dtype=np.int64),
        "eval_landmark_indices": np.asarray(full["eval_landmark_indices"], dtype=np.int64),
        "contour_right": np.asarray(full["contour_right"], dtype=np.int64),
        "contour_left": np.asarray(full["contour_left"], dtype=np.int64),
    }
    locked = np.unique(np.concatenate(list(required.values()) + [np.array([nose])]))
    full_face = np.linalg.norm(v - v[nose], axis=1) <= FACE_RADIUS_MM
    importance = np.where(full_face, float(face_importance), 1.0)
    dec = decimate_mesh(v, f, full["uvs"], full["uv_faces"], target_vertices,
                        locked=locked, importance=importance, config=config)
    keep = dec.vertex_indices
    if len(keep) > target_vertices:
        raise RuntimeError(
            f"decimation stopped at {len(keep)} vertices (no valid collapse left), target {target_vertices}"
        )
    to_low = np.full(len(v), -1, dtype=np.int64)
    to_low[keep] = np.arange(len(keep))
    if np.any(to_low[locked] < 0):  # pragma: no cover - decimate_mesh never removes locked vertices
        raise RuntimeError("a required vertex was removed")
    src, w = selection_weights(keep, f)
    lv = v[keep]
    low_nose = int(to_low[nose])
    face_mask = np.linalg.norm(lv - lv[low_nose], axis=1) <= FACE_RADIUS_MM
    low = {
        "faces": dec.faces.astype(np.int32),
        "uvs": np.asarray(full["uvs"], dtype=np.float32)[dec.uv_indices],
        "uv_faces": dec.uv_faces.astype(np.int32),
        "source_indices": src,
        "source_weights": w,
        "full_vertex_indices": keep.astype(np.int32),
        **{k: to_low[idx].astype(np.int32) for k, idx in required.items()},
        "nose_tip_index": np.int64(low_nose),
        "face_mask": face_mask,
        "face_weights": np.where(face_mask, FACE_WEIGHT, 1.0).astype(np.float32),
        "eye_mask": np.asarray(full["eye_mask"], dtype=bool)[keep],
        "outer_surface_mask": np.asarray(full["outer_surface_mask"], dtype=bool)[keep],
    }
    if "visibility" in full:
        low["visibility"] = np.asarray(full["visibility"], dtype=np.float32)[keep]
    elapsed = time.perf_counter() - t0
    full_normals = vertex_normals_np(v, f)
    quality = mesh_quality(lv, dec.faces, reference_normals=full_normals[keep])
    dev, _ = _nearest_triangles(v, lv, dec.faces)
    flip_corner, flip_near = _flip_checks(v, f, lv, dec.faces, keep)
    fq = mesh_quality(v, f)
    stats = {
        "low_vertices": int(len(keep)),
        "low_faces": int(len(dec.faces)),
        "low_uvs": int(len(dec.uv_indices)),
        "collapses": dec.num_collapses,
        "edge_flips": dec.num_flips,
        "build_seconds": round(elapsed, 2),
        "quality": {k: (round(x, 4) if isinstance(x, float) else x) for k, x in quality.items()},
        "full_quality": {k: (round(x, 4) if isinstance(x, float) else x) for k, x in fq.items()},
        "deviation_full_to_low_mm": {
            "mean": round(float(dev.mean()), 4),
            "p99": round(float(np.percentile(dev, 99)), 4),
            "max": round(float(dev.max()), 4),
            "face_mean": round(float(dev[full_face].mean()), 4),
            "face_max": round(float(dev[full_face].max()), 4),
        },
        "flipped_vs_corner_full_faces": int(flip_corner.sum()),
        "flipped_vs_corner_full_faces_in_full_mesh": int(_flip_checks(v, f, v, f, np.arange(len(v)))[0].sum()),
        "against_nearest_full_surface": int(flip_near.sum()),
        "face_mask_vertices": int(face_mask.sum()),
        "full_face_mask_vertices": int(full_face.sum()),
    }
    return low, stats
