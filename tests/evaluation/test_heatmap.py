"""Heat-map colours, PLY writer and PNG render (digitaltwin_jax/evaluation/heatmap.py)."""
import matplotlib
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.evaluation import heatmap as H


def _read_ply(path):
    """Minimal independent PLY reader for the two layouts the writer produces."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    fmt = header[1].split()[1]
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    has_color = "property uchar red" in header
    body = data[end:]
    if fmt == "ascii":
        rows = body.decode("ascii").split("\n")
        vrows = [list(map(float, r.split())) for r in rows[:nv]]
        frows = [list(map(int, r.split())) for r in rows[nv : nv + nf]]
        v = np.array([r[:3] for r in vrows])
        c = np.array([r[3:6] for r in vrows], dtype=np.uint8) if has_color else None
        assert all(r[0] == 3 for r in frows)
        return v, np.array([r[1:] for r in frows]), c
    assert fmt == "binary_little_endian"
    vdt = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("r", "u1"), ("g", "u1"), ("b", "u1")] if has_color else [])
    vrec = np.frombuffer(body, dtype=vdt, count=nv)
    off = vrec.nbytes
    frec = np.frombuffer(body, dtype=[("n", "u1"), ("i", "<i4", (3,))], count=nf, offset=off)
    assert off + frec.nbytes == len(body) and (frec["n"] == 3).all()
    v = np.stack([vrec["x"], vrec["y"], vrec["z"]], 1).astype(np.float64)
    c = np.stack([vrec["r"], vrec["g"], vrec["b"]], 1) if has_color else None
    return v, frec["i"].astype(np.int64), c


@pytest.mark.parametrize("binary", [True, False])
def test_write_ply_roundtrip(tmp_path, binary, em):
    v, f = em.icosphere(1, 10.0)
    errors = np.linspace(0, 3, len(v))
    errors[0] = np.nan
    path = H.write_error_ply(tmp_path / "err.ply", v, f, errors, vmax=3.0, binary=binary)
    rv, rf, rc = _read_ply(path)
    np.testing.assert_allclose(rv, v.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(rf, f)
    np.testing.assert_array_equal(rc, H.error_colors(errors, vmax=3.0))
    assert tuple(rc[0]) == H.NAN_COLOR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err.ply"]  # no temporary left behind
    # plain mesh, no colours
    _, _, c = _read_ply(H.write_ply(tmp_path / "plain.ply", v, f, binary=binary))
    assert c is None


def test_error_colors_follow_the_colormap():
    e = np.array([0.0, 1.0, 2.0, 5.0, np.nan])
    c = H.error_colors(e, vmin=0.0, vmax=2.0, cmap="viridis")
    cm = matplotlib.colormaps["viridis"]
    expected = np.round(np.array([cm(0.0), cm(0.5), cm(1.0), cm(1.0)])[:, :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(c[:4], expected)
    assert tuple(c[4]) == H.NAN_COLOR


def test_render_heatmap_orientation_and_colours(tmp_path, em):
    """High error on the subject's left (+x) must appear on the image's right in the front view."""
    v, f = em.icosphere(3, 80.0)
    errors = np.where(v[:, 0] > 0, 4.0, 0.0)
    path = H.render_error_heatmap(tmp_path / "front.png", v, f, errors, vmax=4.0, title="test", size_px=300)
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape[0] == 300
    mesh_area = img[:, : int(img.shape[1] * 0.78)]  # left of the colour bar
    red = (mesh_area[..., 0] > mesh_area[..., 2] + 40)
    blue = (mesh_area[..., 2] > mesh_area[..., 0] + 40)
    cols = np.arange(mesh_area.shape[1])
    assert red.sum() > 1000 and blue.sum() > 1000
    assert cols[red.any(0)].mean() > cols[blue.any(0)].mean() + 40
    # the left-profile view looks at the +x side: mostly red
    img_l = np.asarray(Image.open(H.render_error_heatmap(tmp_path / "left.png", v, f, errors, view="left", vmax=4.0, size_px=300)).convert("RGB")).astype(int)
    area = img_l[:, : int(img_l.shape[1] * 0.78)]
    assert (area[..., 0] > area[..., 2] + 40).sum() > 10 * (area[..., 2] > area[..., 0] + 40).sum()


def test_heatmap_bad_inputs(tmp_path, em):
    v, f = em.icosphere(1)
    with pytest.raises(ValueError, match="one per vertex"):
        H.render_error_heatmap(tmp_path / "x.png", v, f, np.zeros(3))
    with pytest.raises(ValueError, match="view"):
        H.render_error_heatmap(tmp_path / "x.png", v, f, np.zeros(len(v)), view="top")
    with pytest.raises(ValueError, match="rotation"):
        H.render_error_heatmap(tmp_path / "x.png", v, f, np.zeros(len(v)), view=np.ones((3, 3)))
    with pytest.raises(ValueError, match="inf"):
        H.write_error_ply(tmp_path / "x.ply", v, f, np.full(len(v), np.inf))
    with pytest.raises(ValueError, match="uint8"):
        H.write_ply(tmp_path / "x.ply", v, f, colors=np.zeros((len(v), 3)))
    with pytest.raises(FileNotFoundError):
        H.write_ply(tmp_path / "missing" / "x.ply", v, f)
    with pytest.raises(ValueError, match="out of range"):
        H.write_ply(tmp_path / "x.ply", v, f + 100)
    assert not list(tmp_path.iterdir())
