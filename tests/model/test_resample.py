"""Tests of digitaltwin_jax/model/resample.py (the low head mesh as a vertex-subset decimation).

The synthetic mesh is a bumpy open tube with two UV charts (lower and upper half, in two UV tiles),
each cut open by a vertical seam, so it has borders, seam lines and seam corners.  Every property is
checked with small, obviously-correct references written here (union-find charts, edge counting,
the analytic outward direction of the tube).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from digitaltwin_jax.model.low_asset import build_low_asset, mesh_quality, selection_weights
from digitaltwin_jax.model.resample import DecimationConfig, decimate_mesh

N_AROUND, N_ROWS, RADIUS, HEIGHT = 36, 19, 60.0, 200.0


def tube(n_around=N_AROUND, n_rows=N_ROWS):
    """Bumpy open cylinder (mm) with two UV charts, each with a vertical seam at theta = 0."""
    mid = n_rows // 2
    theta = 2 * np.pi * np.arange(n_around) / n_around
    z = np.linspace(0.0, HEIGHT, n_rows)
    th, zz = np.meshgrid(theta, z)  # (rows, around)
    r = RADIUS * (1 + 0.15 * np.sin(3 * th) * np.cos(zz / 40.0))
    verts = np.stack([r * np.cos(th), r * np.sin(th), zz], axis=-1).reshape(-1, 3)

    def vid(i, j):
        return j * n_around + i % n_around

    uvs, uv_index = [], {}

    def uid(i, j, chart):
        key = (i, j, chart)
        if key not in uv_index:
            uv_index[key] = len(uvs)
            rows = (0, mid) if chart == 0 else (mid, n_rows - 1)
            v = 0.05 + 0.9 * (j - rows[0]) / (rows[1] - rows[0])
            uvs.append((0.5 * chart + 0.02 + 0.46 * i / n_around, v))
        return uv_index[key]

    faces, uv_faces = [], []
    for j in range(n_rows - 1):
        chart = 0 if j < mid else 1
        for i in range(n_around):
            a, b, c, d = (i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)
            tris = [(a, b, c), (a, c, d)] if (i + j) % 2 == 0 else [(a, b, d), (b, c, d)]
            for tri in tris:
                faces.append([vid(*p) for p in tri])
                uv_faces.append([uid(p[0], p[1], chart) for p in tri])
    return verts, np.array(faces, dtype=np.int32), np.array(uvs), np.array(uv_faces, dtype=np.int32)


# ---- independent references ------------------------------------------------------------------------


def face_charts(faces, uv_faces):
    """Chart id per face: union-find over edges whose two faces agree on both corner uvs."""
    parent = list(range(len(faces)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = {}
    for fi, (f, t) in enumerate(zip(faces.tolist(), uv_faces.tolist())):
        for k in range(3):
            a, b = f[k], f[(k + 1) % 3]
            ua, ub = t[k], t[(k + 1) % 3]
            key = (min(a, b), max(a, b))
            uvkey = (ua, ub) if a < b else (ub, ua)
            if key in edges:
                g, guv = edges[key]
                if guv == uvkey:
                    parent[find(fi)] = find(g)
            else:
                edges[key] = (fi, uvkey)
    return np.array([find(i) for i in range(len(faces))])


def wedge_charts(faces, uv_faces):
    """{(vertex, uv index): chart id} of the full mesh (each wedge must belong to one chart)."""
    charts = face_charts(faces, uv_faces)
    out = {}
    for fi in range(len(faces)):
        for k in range(3):
            key = (int(faces[fi, k]), int(uv_faces[fi, k]))
            assert out.setdefault(key, charts[fi]) == charts[fi]
    return out


def assert_manifold(faces):
    directed = {}
    undirected = {}
    for f in faces.tolist():
        for k in range(3):
            a, b = f[k], f[(k + 1) % 3]
            assert (a, b) not in directed, "repeated directed edge (inconsistent orientation)"
            directed[(a, b)] = True
            undirected[(min(a, b), max(a, b))] = undirected.get((min(a, b), max(a, b)), 0) + 1
    assert max(undirected.values()) <= 2
    # every vertex's faces form one fan (connected through shared edges)
    ring = {}
    for fi, f in enumerate(faces.tolist()):
        for w in f:
            ring.setdefault(w, []).append(fi)
    for w, fl in ring.items():
        seen, stack = {fl[0]}, [fl[0]]
        while stack:
            g = stack.pop()
            for h in fl:
                if h not in seen and len(set(faces[g]) & set(faces[h])) == 2:
                    seen.add(h)
                    stack.append(h)
        assert len(seen) == len(fl), f"vertex {w} is not a manifold vertex"


def triangle_areas(v, f):
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def uv_signed_areas(t, tf):
    a, b, c = t[tf[:, 0]], t[tf[:, 1]], t[tf[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def assert_uvs_from_one_chart(full_corner_vertices, corner_uvs, faces, uvs, uv_faces):
    """Each low corner (full vertex, uv coordinates) is a wedge of the full mesh, all three of a face
    in the same chart (keyed by coordinates, so it needs no uv index map)."""
    charts = face_charts(faces, uv_faces)
    wedge = {}
    for fi in range(len(faces)):
        for k in range(3):
            key = (int(faces[fi, k]), tuple(uvs[uv_faces[fi, k]].tolist()))
            wedge.setdefault(key, set()).add(charts[fi])
    for fv, fuv in zip(full_corner_vertices.tolist(), corner_uvs.tolist()):
        sets = [wedge[(v, tuple(t))] for v, t in zip(fv, fuv)]
        assert set.intersection(*sets), "a low face mixes UV charts"


def dense_w(idx, w, n_full):
    W = np.zeros((len(idx), n_full))
    for r in range(len(idx)):
        for k in range(3):
            W[r, idx[r, k]] += w[r, k]
    return W


# ---- decimation on the synthetic tube -------------------------------------------------------------


@pytest.fixture(scope="module", params=["default", "no_feature_quadrics"])
def decimated(request):
    """Default settings, and without the seam/border constraint planes, so that seams and borders
    must survive through the topological rules alone."""
    verts, faces, uvs, uv_faces = tube()
    rng = np.random.default_rng(0)
    locked = np.unique(np.concatenate([rng.choice(len(verts), 12, replace=False), [5, 5 * N_AROUND + 17]]))
    cfg = DecimationConfig() if request.param == "default" else DecimationConfig(feature_weight=0.0)
    dec = decimate_mesh(verts, faces, uvs, uv_faces, 200, locked=locked, config=cfg)
    return verts, faces, uvs, uv_faces, locked, dec


def test_reaches_target_and_keeps_locked(decimated):
    verts, faces, _, _, locked, dec = decimated
    assert len(dec.vertex_indices) == 200
    assert dec.num_collapses == len(verts) - 200
    assert np.all(np.diff(dec.vertex_indices) > 0)
    assert set(locked.tolist()) <= set(dec.vertex_indices.tolist())
    assert set(np.unique(dec.faces).tolist()) == set(range(200))  # no unused low vertex


def test_weights_are_barycentric_and_transfer_exactly(decimated):
    verts, faces, _, _, locked, dec = decimated
    src, w = selection_weights(dec.vertex_indices, faces)
    assert src.shape == (200, 3) and w.shape == (200, 3)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)
    full_tris = {tuple(sorted(f)) for f in faces.tolist()}
    assert all(tuple(sorted(s)) in full_tris for s in src.tolist())  # inside one full triangle
    W = dense_w(src, w, len(verts))
    low_v = verts[dec.vertex_indices]
    np.testing.assert_array_equal(W @ verts, low_v)
    # a random linear deformation (mean + sum_k a_k B_k) transfers exactly through W
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(5, len(verts), 3))
    a = rng.normal(size=5)
    deformed_full = verts + np.tensordot(a, basis, axes=1)
    low_basis = np.stack([W @ b for b in basis])
    np.testing.assert_allclose(W @ deformed_full, low_v + np.tensordot(a, low_basis, axes=1), atol=1e-9)
    # required vertices: one-hot rows at themselves
    low_of = {int(f): i for i, f in enumerate(dec.vertex_indices)}
    for L in locked:
        row = W[low_of[int(L)]]
        assert row[L] == 1.0 and np.count_nonzero(row) == 1


def test_mesh_is_clean(decimated):
    verts, _, _, _, _, dec = decimated
    low_v = verts[dec.vertex_indices]
    assert_manifold(dec.faces)
    areas = triangle_areas(low_v, dec.faces)
    assert areas.min() > 1e-3 * areas.mean()
    # no flips: every face normal points away from the tube axis at its centroid
    n = np.cross(low_v[dec.faces[:, 1]] - low_v[dec.faces[:, 0]], low_v[dec.faces[:, 2]] - low_v[dec.faces[:, 0]])
    c = low_v[dec.faces].mean(axis=1)
    radial = c * np.array([1.0, 1.0, 0.0])
    assert np.all(np.einsum("ij,ij->i", n, radial) > 0)
    # Euler characteristic of an open tube stays 0 (V - E + F), two borders stay two loops
    edges = {tuple(sorted((f[k], f[(k + 1) % 3]))) for f in dec.faces.tolist() for k in range(3)}
    assert len(low_v) - len(edges) + len(dec.faces) == 0


def test_uv_layout_within_charts(decimated):
    verts, faces, uvs, uv_faces, _, dec = decimated
    wedges = wedge_charts(faces, uv_faces)
    full_v = dec.vertex_indices[dec.faces]  # (Fl, 3) full vertex ids
    full_t = dec.uv_indices[dec.uv_faces]  # (Fl, 3) full uv ids
    for fv, ft in zip(full_v.tolist(), full_t.tolist()):
        charts = {wedges[(v, t)] for v, t in zip(fv, ft)}  # KeyError = a uv never used at that vertex
        assert len(charts) == 1
    # same orientation in UV as the full layout (all positive there), no UV fold-over
    assert np.all(uv_signed_areas(uvs, uv_faces) > 0)
    assert np.all(uv_signed_areas(uvs[dec.uv_indices], dec.uv_faces) > 0)
    # both charts survive, each still cut by its seam
    low_charts = face_charts(dec.faces, dec.uv_faces)
    assert len(np.unique(low_charts)) == len(np.unique(face_charts(faces, uv_faces))) == 2


def test_seam_and_border_vertices_stay_on_their_lines(decimated):
    verts, faces, uvs, uv_faces, _, dec = decimated
    low_v = verts[dec.vertex_indices]
    z = low_v[:, 2]
    seam_z = np.linspace(0.0, HEIGHT, N_ROWS)[N_ROWS // 2]
    # the horizontal seam is still a line of vertices no face crosses
    fz = z[dec.faces]
    assert np.all((fz.max(axis=1) <= seam_z) | (fz.min(axis=1) >= seam_z))
    assert np.sum(z == seam_z) >= 3
    # every border edge of the low mesh joins two vertices of the same full border row
    count = {}
    for f in dec.faces.tolist():
        for k in range(3):
            e = tuple(sorted((f[k], f[(k + 1) % 3])))
            count[e] = count.get(e, 0) + 1
    for (a, b), c in count.items():
        if c == 1:
            assert z[a] == z[b] and z[a] in (0.0, HEIGHT)


def test_quality_no_worse_than_limit():
    verts, faces, uvs, uv_faces = tube()
    cfg = DecimationConfig(max_aspect_ratio=2.5, flip_max_dihedral_deg=0.0)
    dec = decimate_mesh(verts, faces, uvs, uv_faces, 250, config=cfg)
    low_v = verts[dec.vertex_indices]
    full_worst = max(_aspect_ref(*verts[f]) for f in faces)
    worst = max(_aspect_ref(*low_v[f]) for f in dec.faces)
    assert worst <= max(2.5, full_worst) + 1e-9
    assert dec.num_flips == 0


def _aspect_ref(p0, p1, p2):
    """Circumradius / (2 inradius) from the textbook formulas R = abc / 4A, r = A / s."""
    a, b, c = np.linalg.norm(p1 - p2), np.linalg.norm(p0 - p2), np.linalg.norm(p0 - p1)
    area = 0.5 * np.linalg.norm(np.cross(p1 - p0, p2 - p0))
    return (a * b * c / (4 * area)) / (2 * area / (0.5 * (a + b + c)))


def test_mesh_quality_closed_form():
    v = np.array([[0, 0, 0], [1, 0, 0], [0.5, math.sqrt(3) / 2, 0], [0, 1, 0]], dtype=float)
    q = mesh_quality(v, np.array([[0, 1, 2]]))
    assert q["min_angle_deg_min"] == pytest.approx(60.0) and q["aspect_ratio_max"] == pytest.approx(1.0)
    q = mesh_quality(v, np.array([[0, 1, 3]]))
    r_circ, r_in = math.sqrt(2) / 2, (2 - math.sqrt(2)) / 2
    assert q["min_angle_deg_min"] == pytest.approx(45.0)
    assert q["aspect_ratio_max"] == pytest.approx(r_circ / (2 * r_in))
    assert q["boundary_edges"] == 3 and q["nonmanifold_edges"] == 0 and q["degenerate_faces"] == 0


def test_bad_input_raises():
    verts, faces, uvs, uv_faces = tube(8, 5)
    with pytest.raises(ValueError, match="vertices"):
        decimate_mesh(verts[:, :2], faces, uvs, uv_faces, 10)
    bad = faces.copy()
    bad[0, 1] = bad[0, 0]
    with pytest.raises(ValueError, match="degenerate"):
        decimate_mesh(verts, bad, uvs, uv_faces, 10)
    with pytest.raises(ValueError, match="uv_faces"):
        decimate_mesh(verts, faces, uvs, uv_faces[:-1], 10)
    with pytest.raises(ValueError, match="locked"):
        decimate_mesh(verts, faces, uvs, uv_faces, 5, locked=np.arange(10))
    nan = verts.copy()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decimate_mesh(nan, faces, uvs, uv_faces, 10)


def test_build_low_asset_on_synthetic_head():
    verts, faces, uvs, uv_faces = tube()
    rng = np.random.default_rng(3)
    special = rng.choice(len(verts), 68 + 34, replace=False)
    lm, contours = special[:68], special[68:]
    nose = int(np.argmax(verts[:, 0]))  # "nose": most protruding along +x
    n = len(verts)
    full = {
        "vertices": verts.astype(np.float32), "faces": faces, "uvs": uvs.astype(np.float32), "uv_faces": uv_faces,
        "landmark_indices": lm.astype(np.int32), "eval_landmark_indices": lm[[36, 39, 42, 45, 33, 48, 54]],
        "contour_right": contours[:17], "contour_left": contours[17:], "nose_tip_index": np.int64(nose),
        "eye_mask": rng.random(n) < 0.1, "outer_surface_mask": rng.random(n) < 0.8,
        "visibility": rng.random(n).astype(np.float32),
    }
    low, stats = build_low_asset(full, target_vertices=300)
    keep = low["full_vertex_indices"]
    assert len(keep) == stats["low_vertices"] == 300 and stats["low_faces"] == len(low["faces"])
    W = dense_w(low["source_indices"], low["source_weights"], n)
    low_v = W @ verts
    for key in ("landmark_indices", "eval_landmark_indices", "contour_right", "contour_left"):
        np.testing.assert_array_equal(low_v[low[key]], verts[full[key]])
    np.testing.assert_array_equal(low_v[int(low["nose_tip_index"])], verts[nose])
    dist = np.linalg.norm(low_v - verts[nose], axis=1)
    np.testing.assert_array_equal(low["face_mask"], dist <= 95.0)
    np.testing.assert_array_equal(low["face_weights"], np.where(dist <= 95.0, 5.0, 1.0))
    np.testing.assert_array_equal(low["eye_mask"], full["eye_mask"][keep])
    np.testing.assert_array_equal(low["outer_surface_mask"], full["outer_surface_mask"][keep])
    assert_uvs_from_one_chart(keep[low["faces"]], low["uvs"][low["uv_faces"]], faces, uvs.astype(np.float32), uv_faces)
    assert stats["quality"]["degenerate_faces"] == 0 and stats["quality"]["nonmanifold_edges"] == 0
    assert stats["flipped_vs_corner_full_faces"] == 0
    assert 0 <= stats["deviation_full_to_low_mm"]["mean"] <= stats["deviation_full_to_low_mm"]["max"] < 10.0


# ---- the shipped asset ------------------------------------------------------------------------------


def _assets_present():
    from digitaltwin_jax.model.head_model import asset_path

    return asset_path("ict_head_full.npz").exists() and asset_path("ict_head_low.npz").exists()


@pytest.mark.skipif(not _assets_present(), reason="head model assets not built")
def test_shipped_low_asset():
    from digitaltwin_jax.model.head_model import asset_path, load_head_model

    low = load_head_model("low")
    full = load_head_model("full")
    with np.load(asset_path("ict_head_low.npz")) as z:
        src, w = z["source_indices"], z["source_weights"]
    assert low.num_vertices <= 3000 and len(low.faces) <= 6000
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    # vertices and a basis equal W @ full, computed here row by row with numpy
    fv = full.vertices.astype(np.float64)
    expect = np.einsum("vk,vkj->vj", w.astype(np.float64), fv[src])
    np.testing.assert_allclose(low.vertices, expect, atol=1e-4)
    b = full.identity_basis[7].astype(np.float64)
    np.testing.assert_allclose(low.identity_basis[7], np.einsum("vk,vkj->vj", w, b[src]), atol=1e-5)
    # required points coincide exactly with the full model's
    np.testing.assert_array_equal(low.vertices[low.landmark_indices], full.vertices[full.landmark_indices])
    np.testing.assert_array_equal(low.vertices[low.eval_landmark_indices], full.vertices[full.eval_landmark_indices])
    for lc, fc in zip(low.contour_candidates, full.contour_candidates):
        np.testing.assert_array_equal(low.vertices[list(lc)], full.vertices[list(fc)])
    np.testing.assert_array_equal(low.vertices[low.nose_tip_index], full.vertices[full.nose_tip_index])
    np.testing.assert_array_equal(
        low.expression_basis[:, low.landmark_indices], full.expression_basis[:, full.landmark_indices]
    )
    # clean mesh: manifold, no degenerate faces, each face's UVs are full UVs of one chart
    assert_manifold(low.faces)
    with np.load(asset_path("ict_head_low.npz")) as z:
        keep = z["full_vertex_indices"]
    assert_uvs_from_one_chart(keep[low.faces], low.uvs[low.uv_faces], full.faces, full.uvs, full.uv_faces)
    areas = triangle_areas(low.vertices.astype(np.float64), low.faces)
    assert areas.min() > 0
    assert np.all(uv_signed_areas(low.uvs.astype(np.float64), low.uv_faces) != 0)
    assert low.face_mask.sum() > 0 and low.eye_mask.sum() > 0 and low.outer_surface_mask.sum() > 0.8 * low.num_vertices
