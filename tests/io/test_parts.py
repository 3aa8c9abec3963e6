"""Extra meshes (io/parts.py) in OBJ + MTL and GLB: separate objects, materials and textures; the GLB
read back with pygltflib (always) and checked by the Khronos glTF validator (when node and the npm
package gltf-validator are installed)."""
import importlib.util
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from digitaltwin_jax.io import read_obj
from digitaltwin_jax.io.gltf import write_glb
from digitaltwin_jax.io.obj import write_obj
from digitaltwin_jax.io.parts import MeshPart

ROOT = Path(__file__).resolve().parents[2]


def _png(value, size=8):
    return iio.imwrite("<bytes>", np.full((size, size, 3), value, np.uint8), extension=".png")


def _tetra(offset):
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float64) + offset
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    uv = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]])
    return v, f, uv, f.copy()


def _scene():
    hv, hf, huv, huvf = _tetra(0.0)
    ev, ef, euv, euvf = _tetra(50.0)
    part = MeshPart("eyes", ev, ef, euv, euvf, texture_name="eyes.png", texture_png=_png(30), roughness=0.2)
    return (hv, hf, huv, huvf), part


def test_obj_writes_parts_as_objects_with_their_materials(tmp_path):
    (hv, hf, huv, huvf), part = _scene()
    write_obj(tmp_path / "h.obj", hv, hf, huv, huvf, mtl_name="h.mtl", texture_name="d.png", parts=(part,))
    obj = read_obj(tmp_path / "h.obj")
    faces, uv_faces = obj.triangles()
    np.testing.assert_allclose(obj.vertices, np.concatenate([hv, part.vertices]), atol=1e-6)
    np.testing.assert_array_equal(faces, np.concatenate([hf, part.faces + 4]))
    np.testing.assert_array_equal(uv_faces, np.concatenate([huvf, part.uv_faces + 4]))
    text = (tmp_path / "h.obj").read_text().splitlines()
    assert "o eyes" in text and text.index("usemtl eyes") > text.index("o eyes") > text.index("usemtl head")
    mtl = (tmp_path / "h.mtl").read_text()
    assert "newmtl head" in mtl and "map_Kd d.png" in mtl and "newmtl eyes" in mtl and "map_Kd eyes.png" in mtl
    with pytest.raises(ValueError, match="mtl_name"):
        write_obj(tmp_path / "x.obj", hv, hf, huv, huvf, parts=(part,))
    bad = MeshPart("eyes", part.vertices, part.faces + 10, part.uvs, part.uv_faces)
    with pytest.raises(ValueError, match="'eyes'.*index"):
        write_obj(tmp_path / "x.obj", hv, hf, huv, huvf, mtl_name="x.mtl", parts=(bad,))
    with pytest.raises(ValueError, match="name"):
        write_obj(tmp_path / "x.obj", hv, hf, huv, huvf, mtl_name="x.mtl",
                  parts=(MeshPart("a b", part.vertices, part.faces, part.uvs, part.uv_faces),))


def _write_glb(path):
    (hv, hf, huv, huvf), part = _scene()
    morph = np.zeros((2, 4, 3))
    morph[0, 3, 2] = 2.0
    write_glb(path, hv, hf, huv, huvf, texture_png=_png(200), morph_targets=morph, morph_names=["a", "b"],
              morph_weights=[0.5, 0.0], scale=1e-3, parts=(part,))
    return part


def test_glb_parts_are_separate_meshes_nodes_and_materials(tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    part = _write_glb(tmp_path / "h.glb")
    g = pygltflib.GLTF2().load(str(tmp_path / "h.glb"))
    assert [m.name for m in g.meshes] == ["head", "eyes"]
    assert [n.name for n in g.nodes] == ["head", "eyes"] and g.scenes[0].nodes == [0, 1]
    assert [m.name for m in g.materials] == ["skin", "eyes"] and len(g.images) == 2 and len(g.textures) == 2
    eye_prim = g.meshes[1].primitives[0]
    assert eye_prim.material == 1 and g.materials[1].pbrMetallicRoughness.baseColorTexture.index == 1
    assert g.textures[1].source == 1 and not eye_prim.targets
    assert g.materials[1].pbrMetallicRoughness.roughnessFactor == pytest.approx(0.2)
    blob = g.binary_blob()

    def acc(i):
        a = g.accessors[i]
        vw = g.bufferViews[a.bufferView]
        n = {"VEC3": 3, "VEC2": 2, "SCALAR": 1}[a.type]
        dt = np.float32 if a.componentType == 5126 else np.uint32
        return np.frombuffer(blob, dt, a.count * n, vw.byteOffset + (a.byteOffset or 0)).reshape(a.count, n)

    pos = acc(eye_prim.attributes.POSITION)
    idx = acc(eye_prim.indices).reshape(-1, 3)
    # positions in metres, triangles the same as the part's (no seams here: one uv per vertex)
    np.testing.assert_allclose(pos[idx], part.vertices[part.faces] * 1e-3, atol=1e-7)
    tc = acc(eye_prim.attributes.TEXCOORD_0)
    np.testing.assert_allclose(tc[idx], np.stack([part.uvs[:, 0], 1 - part.uvs[:, 1]], 1)[part.uv_faces], atol=1e-7)
    a = g.accessors[eye_prim.attributes.POSITION]
    np.testing.assert_allclose(a.min, pos.min(0), atol=0) and np.testing.assert_allclose(a.max, pos.max(0), atol=0)
    nrm = acc(eye_prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-5)
    vw = g.bufferViews[g.images[1].bufferView]
    assert blob[vw.byteOffset:vw.byteOffset + vw.byteLength] == part.texture_png


def _validator():
    spec = importlib.util.spec_from_file_location("validate_gltf", ROOT / "benchmarks" / "validate_gltf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_khronos_validator_reports_no_errors_or_warnings(tmp_path):
    mod = _validator()
    found = mod.find_validator()
    if found is None:
        pytest.skip("Khronos glTF validator not installed (needs node and `npm install gltf-validator`; "
                    "see benchmarks/validate_gltf.py)")
    _write_glb(tmp_path / "h.glb")
    rep = mod.validate(tmp_path / "h.glb", found)
    assert rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0, mod.summary(rep)
    # the validator does look: a broken file is reported
    data = bytearray((tmp_path / "h.glb").read_bytes())
    data[8:12] = (len(data) + 4).to_bytes(4, "little")  # wrong total length in the header
    (tmp_path / "bad.glb").write_bytes(bytes(data))
    assert mod.validate(tmp_path / "bad.glb", found)["issues"]["numErrors"] > 0
