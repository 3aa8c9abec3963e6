"""OBJ/MTL and GLB writing: round trips through meshio, pygltflib and our readers; atomic writes."""
import io
import os

import meshio
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.io import read_glb, read_mesh, read_obj, split_seams, write_glb, write_obj
from digitaltwin_jax.io.atomic import atomic_write
from digitaltwin_jax.io.mesh import MeshReadError


def cube_with_seams():
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    # each cube face its own UV chart: 4 uvs per face -> 24 uvs for 8 vertices (seams everywhere)
    uvs, uf = [], []
    for k, (a, b, c, d) in enumerate(quads):
        base = len(uvs)
        u0 = k / 6.0
        uvs += [(u0, 0.0), (u0 + 0.15, 0.0), (u0 + 0.15, 0.9), (u0, 0.9)]
        uf += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return v, f, np.array(uvs), np.array(uf)


def png_bytes(h=8, w=8):
    buf = io.BytesIO()
    Image.fromarray((np.arange(h * w * 3) % 255).astype(np.uint8).reshape(h, w, 3)).save(buf, "PNG")
    return buf.getvalue()


def test_obj_round_trip_keeps_uv_seams(tmp_path):
    v, f, uvs, uf = cube_with_seams()
    write_obj(tmp_path / "c.obj", v, f, uvs, uf, mtl_name="c.mtl", texture_name="diffuse.png")
    m = read_obj(tmp_path / "c.obj")
    faces, uv_faces = m.triangles()
    np.testing.assert_allclose(m.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(faces, f)
    np.testing.assert_allclose(m.uvs[uv_faces], uvs[uf], atol=1e-6)
    mtl = (tmp_path / "c.mtl").read_text()
    assert "map_Kd diffuse.png" in mtl and "newmtl head" in mtl
    assert "mtllib c.mtl" in (tmp_path / "c.obj").read_text()
    # meshio cannot keep a seamed UV layout (this is why read_obj exists) ...
    with pytest.raises(ValueError, match="point_data"):
        meshio.read(tmp_path / "c.obj")
    # ... but as an independent reader of the geometry it sees the same positions and triangles
    write_obj(tmp_path / "g.obj", v, f)
    mm = meshio.read(tmp_path / "g.obj")
    np.testing.assert_allclose(mm.points, v, atol=1e-6)
    np.testing.assert_array_equal(mm.cells_dict["triangle"], f)


def test_read_obj_quads_negative_indices_and_errors(tmp_path):
    p = tmp_path / "q.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf -4 -3 -2 -1\n")
    m = read_obj(p)
    faces, uv_faces = m.triangles()
    assert uv_faces is None and faces.shape == (2, 3)
    # both triangles cover the unit square: total area 1
    a = 0.5 * np.linalg.norm(np.cross(m.vertices[faces[:, 1]] - m.vertices[faces[:, 0]],
                                      m.vertices[faces[:, 2]] - m.vertices[faces[:, 0]]), axis=1)
    assert a.sum() == pytest.approx(1.0)
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(ValueError, match="bad.obj"):
        read_obj(bad)


def test_write_obj_rejects_nan_and_bad_shapes(tmp_path):
    v, f, uvs, uf = cube_with_seams()
    v2 = v.copy()
    v2[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_obj(tmp_path / "x.obj", v2, f)
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        write_obj(tmp_path / "x.obj", v, f[:, :2])
    assert not any(tmp_path.iterdir())  # nothing half written


def test_glb_round_trip_with_texture_and_morph_targets(tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    v, f, uvs, uf = cube_with_seams()
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(3, 8, 3))
    tex = png_bytes()
    write_glb(tmp_path / "c.glb", v, f, uvs, uf, texture_png=tex, morph_targets=targets,
              morph_names=["a", "b", "c"], morph_weights=[0.1, 0.0, 0.5], scale=1e-3)
    # independent reader
    g = pygltflib.GLTF2().load(str(tmp_path / "c.glb"))
    assert g.asset.version == "2.0"
    prim = g.meshes[0].primitives[0]
    assert len(prim.targets) == 3
    assert g.meshes[0].extras["targetNames"] == ["a", "b", "c"]
    assert g.meshes[0].weights == [0.1, 0.0, 0.5]
    blob = g.binary_blob()
    acc = g.accessors[prim.attributes.POSITION]
    view = g.bufferViews[acc.bufferView]
    pos = np.frombuffer(blob, np.float32, acc.count * 3, view.byteOffset).reshape(-1, 3)
    # every split vertex sits at one of the cube's corners (in metres)
    vert_of, uv_of, nf = split_seams(f, uf)
    np.testing.assert_allclose(pos, v[vert_of] * 1e-3, atol=1e-7)
    assert acc.count == 24  # 6 charts x 4 corners
    # our reader: triangles map back to the original faces, texcoords flipped to glTF's v-down
    r = read_glb(tmp_path / "c.glb")
    np.testing.assert_array_equal(vert_of[r["indices"]], f)
    np.testing.assert_allclose(r["texcoords"][:, 1], 1.0 - uvs[uv_of][:, 1], atol=1e-6)
    np.testing.assert_allclose(r["morph_targets"][1], targets[1][vert_of] * 1e-3, atol=1e-7)
    assert r["image"] == tex


def test_glb_rejects_wrong_morph_shape(tmp_path):
    v, f, uvs, uf = cube_with_seams()
    with pytest.raises(ValueError, match="morph_targets"):
        write_glb(tmp_path / "c.glb", v, f, uvs, uf, morph_targets=np.zeros((2, 5, 3)))
    assert not (tmp_path / "c.glb").exists()


def test_atomic_write_leaves_no_half_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write(b"new partial")
            raise RuntimeError("crash in the middle of a write")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "x.bin") as fh:
            fh.write(b"x")


def test_read_mesh_through_meshio(tmp_path):
    v, f, _, _ = cube_with_seams()
    meshio.write(tmp_path / "c.ply", meshio.Mesh(v, [("triangle", f)]))
    rv, rf = read_mesh(tmp_path / "c.ply")
    np.testing.assert_allclose(rv, v)
    np.testing.assert_array_equal(rf, f)
    meshio.write(tmp_path / "d.ply", meshio.Mesh(v, [("triangle", np.array([[0, 0, 1]]))]))
    with pytest.raises(MeshReadError, match="degenerate"):
        read_mesh(tmp_path / "d.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a mesh")
    with pytest.raises(MeshReadError, match="junk.ply"):
        read_mesh(tmp_path / "junk.ply")
