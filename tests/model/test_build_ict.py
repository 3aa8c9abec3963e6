"""The ICT converter on a tiny synthetic FaceXModel folder (CI has no ICT checkout)."""
import numpy as np
import pytest

from digitaltwin_jax.model.build_ict import IctLayout, head_masks, read_ict_head

# A 3x3-vertex grid of quads (4 quads) + one extra "non-head" triangle, with a UV seam:
# the right column of quads uses its own UV chart (duplicated uvs along x = 1).
GRID = np.array([[x, y, 0.0] for y in range(3) for x in range(3)])  # cm
EXTRA = np.array([[5.0, 5.0, 5.0], [6.0, 5.0, 5.0], [5.0, 6.0, 5.0]])


def _write_obj(path, verts):
    uvs = [(x / 2.0, y / 2.0) for y in range(3) for x in range(3)]  # chart A: uv i = vertex i
    seam = [(0.6, y / 2.0) for y in range(3)]  # chart B copies of the x = 1 column (uv 9, 10, 11)
    lines = [f"v {a} {b} {c}" for a, b, c in verts]
    lines += [f"vt {u} {v}" for u, v in uvs + seam + [(0.9, 0.9)]]
    # left quads in chart A, right quads in chart B (vertex 1/4/7 get uvs 9/10/11 there)
    lines += ["f 1/1 2/2 5/5 4/4", "f 4/4 5/5 8/8 7/7"]
    lines += ["f 2/10 3/3 6/6 5/11", "f 5/11 6/6 9/9 8/12"]
    lines += ["f 10/13 11/13 12/13"]  # not part of the head
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ict_dir(tmp_path):
    _write_obj(tmp_path / "generic_neutral_mesh.obj", np.vstack([GRID, EXTRA]))
    rng = np.random.default_rng(0)
    for i in range(3):
        d = np.zeros((12, 3))
        d[:9] = rng.normal(size=(9, 3)) * 0.1
        _write_obj(tmp_path / f"identity{i:03d}.obj", np.vstack([GRID, EXTRA]) + d)
    smile = np.zeros((12, 3))
    smile[4, 2] = 0.5  # centre vertex moves 5 mm
    _write_obj(tmp_path / "mouthSmile_L.obj", np.vstack([GRID, EXTRA]) + smile)
    pupil = np.zeros((12, 3))
    pupil[10] = 1.0  # moves only a non-head vertex -> dropped
    _write_obj(tmp_path / "PupilDilate_L.obj", np.vstack([GRID, EXTRA]) + pupil)
    return tmp_path


LAYOUT = IctLayout(head_vertices=9, head_polygons=4, face_vertices=9)


def test_converter_units_quads_seams_and_bases(ict_dir):
    head = read_ict_head(ict_dir, layout=LAYOUT, progress=False)
    np.testing.assert_allclose(head["vertices"], GRID * 10.0)  # cm -> mm
    assert head["faces"].shape == (8, 3)  # 4 quads -> 8 triangles, extra triangle dropped
    # every triangle of a quad uses the quad's corners; orientation kept (normals along +z)
    v = head["vertices"]
    f = head["faces"]
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert np.all(n[:, 2] > 0)
    # the seam: vertex 1 (x=1, y=0) has two different uvs depending on the chart
    uv_of_v1 = {tuple(head["uvs"][head["uv_faces"][fi, k]]) for fi, k in zip(*np.nonzero(f == 1))}
    assert uv_of_v1 == {(0.5, 0.0), (0.6, 0.0)}
    # unused uv (0.9, 0.9) of the dropped triangle is removed
    assert len(head["uvs"]) == 12
    # identity modes: (identity - neutral) in mm
    assert head["identity_basis"].shape == (3, 9, 3)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(head["identity_basis"][0], rng.normal(size=(9, 3)) * 0.1 * 10.0, atol=1e-9)
    assert list(head["expression_names"]) == ["mouthSmile_L"]
    assert head["dropped_expressions"] == ["PupilDilate_L"]
    np.testing.assert_allclose(head["expression_basis"][0, 4], [0.0, 0.0, 5.0])


def test_converter_missing_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="FaceXModel"):
        read_ict_head(tmp_path, layout=LAYOUT, progress=False)


def test_head_masks_on_synthetic_grid(ict_dir):
    head = read_ict_head(ict_dir, layout=LAYOUT, progress=False)
    v = head["vertices"].copy()
    v[4, 2] = 3.0  # the centre bulges toward +z: nose tip
    lm = np.zeros(68, dtype=int)
    masks = head_masks(v, head["faces"], lm, visibility=np.ones(9), face_vertices=9)
    assert int(masks["nose_tip_index"]) == 4
    d = np.linalg.norm(v - v[4], axis=1)
    np.testing.assert_array_equal(masks["face_mask"], d <= 95.0)
    np.testing.assert_array_equal(masks["face_weights"], np.where(d <= 95.0, 5.0, 1.0))
