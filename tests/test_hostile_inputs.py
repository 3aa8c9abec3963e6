"""Hostile inputs (issue 20, part 5): every case gets a clear error naming the problem or a valid result.

No traceback, no partial output, no NaN in any output.  Files are crafted byte by byte where Pillow
would refuse to write them (a PNG declaring 100000 x 100000 pixels, a bad CRC, a 12-bit JPEG frame
header); references are independent of the code under test (hand-computed colours, the EXIF 2.3
orientation table written as "where the stored first row / first column end up", the errno of a
simulated full disk).  The expensive reconstruction is stubbed in the command-line cases: the stub
records the image it was given and returns a three-vertex avatar, so ``read_image`` and
``write_avatar`` run for real.
"""
from __future__ import annotations

import errno
import io
import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax import cli, errors
from digitaltwin_jax.io.images import ImageReadError, read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_declaring(w: int, h: int, payload: bytes = b"\0" * 64) -> bytes:
    """A PNG whose IHDR declares ``w x h`` 8-bit RGB pixels, with a tiny (valid zlib) IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(payload))
            + _chunk(b"IEND", b""))


def _encoded(arr, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(h=48, w=64, seed=0):
    return (np.random.default_rng(seed).uniform(size=(h, w, 3)) * 255).astype(np.uint8)


def _tiny_avatar(image_size=(32, 32)):
    from digitaltwin_jax.pipeline import Avatar

    v = np.array([[0.0, 0, 500], [10, 0, 500], [0, 10, 500]], np.float32)
    return Avatar(
        vertices=v, neutral_vertices=v, faces=np.array([[0, 1, 2]]), uvs=np.array([[0.0, 0], [1, 0], [0, 1]]),
        uv_faces=np.array([[0, 1, 2]]), expression_names=("jawOpen",), expression_weights=np.array([0.5], np.float32),
        expression_basis=np.zeros((1, 3, 3), np.float32), texture=np.full((16, 16, 3), 200, np.uint8),
        texture_confidence=np.ones((16, 16), np.float32),
        K=np.array([[100.0, 0, image_size[1] / 2], [0, 100, image_size[0] / 2], [0, 0, 1]]),
        rotation=np.eye(3), translation=np.zeros(3), landmarks_2d=np.zeros((68, 2)),
        landmarks_3d=np.zeros((68, 3)),
        landmark_errors_px=np.r_[np.full(60, 0.5), np.full(8, np.nan)],  # NaN = missing landmark
        image_size=tuple(image_size), timings={}, info={},
    )


@pytest.fixture
def stub_reconstruct(monkeypatch):
    """Replace the expensive reconstruction: record the image, return a three-vertex avatar."""
    import digitaltwin_jax.pipeline as pipeline

    seen = []

    def fake(image, *, config=None, stages=None, model=None):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        seen.append(image)
        return _tiny_avatar(image.shape[:2])

    monkeypatch.setattr(pipeline, "reconstruct", fake)
    return seen


@pytest.fixture
def run_cli(monkeypatch, tmp_path, capsys):
    """``cli.main`` in-process; returns ``(exit code, stderr)``."""
    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "jax-cache"))

    def run(*args):
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        cap = capsys.readouterr()
        run.out = cap.out
        return code, cap.err

    return run


def _assert_clean_error(code, err, expected_code, *words):
    assert code == expected_code, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def _only(folder: Path, names):
    """The folder holds exactly ``names`` (no temporary or half-written folders beside them)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _no_nan_in_outputs(outdir: Path):
    from digitaltwin_jax.io import read_glb, read_obj

    report = json.loads((outdir / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"report.json contains {c}"))
    assert report["landmark_errors_px"][-1] is None  # missing landmarks are null, not NaN
    assert np.all(np.isfinite(read_obj(outdir / "head.obj").vertices))
    assert np.all(np.isfinite(read_glb(outdir / "head.glb")["positions"]))


# --------------------------------------------------------------------------------------------------
# files that must be refused: API (read_image) and command line (exit 3, one error line, no output)
# --------------------------------------------------------------------------------------------------
def _crc_broken_png():
    data = bytearray(_encoded(_noise(), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR CRC (8 signature + 4 length + 4 type + 13 data = 29)
    return bytes(data)


def _idat_corrupt_png():
    data = bytearray(_encoded(_noise(), "PNG"))
    i = data.index(b"IDAT") + 40
    data[i : i + 16] = b"\xff" * 16  # corrupt deflate data (CRC left stale as well)
    return bytes(data)


def _jpeg_with_precision(bits: int):
    data = bytearray(_encoded(_noise(), "JPEG", quality=90))
    k = data.index(b"\xff\xc0")  # baseline SOF0 -> extended SOF1 with the given sample precision
    data[k + 1], data[k + 4] = 0xC1, bits
    return bytes(data)


REFUSED = {
    # name: (file bytes, words the error must contain)
    "bomb_100000x100000.png": (_png_declaring(100_000, 100_000), ["too large"]),
    "bomb_12000x12000.png": (_png_declaring(12_000, 12_000), ["12000 x 12000", "limit"]),
    "zero_width.png": (_png_declaring(0, 16), ["zero width"]),
    "empty.jpg": (b"", ["empty"]),
    "crc_error.png": (_crc_broken_png(), ["checksum"]),
    "corrupt_idat.png": (_idat_corrupt_png(), ["corrupt"]),
    "truncated.png": (_encoded(_noise(), "PNG")[:300], ["truncated"]),
    "truncated.jpg": (_encoded(_noise(), "JPEG")[:400], ["truncated"]),
    "twelve_bit.jpg": (_jpeg_with_precision(12), ["12-bit JPEG"]),
    "sixteen_bit.jpg": (_jpeg_with_precision(16), ["16-bit JPEG"]),
    "text_named.png": (b"name,value\n" * 30, ["not a recognised image"]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_file_is_refused_by_the_api(tmp_path, name):
    data, words = REFUSED[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert name in msg and isinstance(info.value, ValueError)
    for w in words:
        assert w.lower() in msg.lower(), msg


@pytest.mark.parametrize("name", ["bomb_100000x100000.png", "crc_error.png", "truncated.jpg", "twelve_bit.jpg",
                                  "zero_width.png", "empty.jpg"])
def test_bad_file_is_refused_by_the_command_line(tmp_path, run_cli, name):
    data, words = REFUSED[name]
    path = tmp_path / name
    path.write_bytes(data)
    code, err = run_cli("avatar", path, "-o", tmp_path / "out")
    _assert_clean_error(code, err, cli.EXIT_UNREADABLE, name, *words)
    _only(tmp_path, [name, "jax-cache"])  # no output, no temporary folder


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    for w, h in [(100_000, 100_000), (12_000, 12_000), (65_535, 2)]:
        path = tmp_path / f"bomb{w}.png"
        path.write_bytes(_png_declaring(w, h))
        t0 = time.process_time()
        with pytest.raises(ImageReadError, match="too large|limit"):
            read_image(path, max_pixels=100_000)
        assert time.process_time() - t0 < 0.5
    assert decoded == []  # refused from the header: no pixel buffer was ever allocated
    # the limit is a parameter: a real 300 x 200 photo passes a limit of 60,000 pixels
    ok = tmp_path / "ok.png"
    Image.fromarray(_noise(200, 300)).save(ok)
    assert read_image(ok, max_pixels=60_000).shape == (200, 300, 3)


def test_pipe_and_directory_are_refused(tmp_path):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(fifo)
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_nan_in_float_tiff_is_refused(tmp_path):
    a = np.full((8, 8), 0.5, np.float32)
    a[3, 3] = np.nan
    Image.fromarray(a).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f\.tif.*NaN"):
        read_image(tmp_path / "f.tif")


# --------------------------------------------------------------------------------------------------
# odd but valid files: a correct result (checked against hand-computed colours)
# --------------------------------------------------------------------------------------------------
def test_cmyk_jpeg_gives_the_right_colours(tmp_path):
    # pure ink patches: C+Y -> green, M+Y -> red, K -> black, no ink -> white (CMYK semantics)
    cmyk = np.zeros((32, 32, 4), np.uint8)
    cmyk[:16, :16] = (255, 0, 255, 0)
    cmyk[:16, 16:] = (0, 255, 255, 0)
    cmyk[16:, :16] = (0, 0, 0, 255)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=95)
    rgb = read_image(tmp_path / "c.jpg").astype(int)
    for (y, x), want in {(8, 8): (0, 255, 0), (8, 24): (255, 0, 0), (24, 8): (0, 0, 0),
                         (24, 24): (255, 255, 255)}.items():
        np.testing.assert_allclose(rgb[y, x], want, atol=12)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_multi_frame_file_gives_its_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (20, 12), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    path = tmp_path / f"multi.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with Image.open(path) as im:
        assert im.n_frames == 3  # it really is multi-frame
    out = read_image(path)
    assert out.shape == (12, 20, 3)
    np.testing.assert_array_equal(out, np.broadcast_to([255, 0, 0], out.shape))


def test_sixteen_bit_and_one_bit_images(tmp_path):
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "g16.tif")
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    for name in ("g16.tif", "g16.png"):
        out = read_image(tmp_path / name)
        np.testing.assert_array_equal(out[..., 0], (ramp >> 8).astype(np.uint8))  # high byte, documented
        np.testing.assert_array_equal(out[..., 0], out[..., 2])
    bits = np.zeros((8, 8), bool)
    bits[:, 4:] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    assert (out[:, :4] == 0).all() and (out[:, 4:] == 255).all()


def test_alpha_only_and_la_images_are_composited_over_white(tmp_path):
    # "alpha-only" art: black ink whose shape lives only in the alpha channel
    alpha = np.zeros((10, 10), np.uint8)
    alpha[2:8, 2:8] = 255
    alpha[0, 0] = 128
    Image.fromarray(np.dstack([np.zeros((10, 10, 3), np.uint8), alpha]), "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert (out[2:8, 2:8] == 0).all() and (out[9, 9] == 255).all()
    assert abs(int(out[0, 0, 0]) - round(255 * (1 - 128 / 255))) <= 1
    # LA: grey 100 at alpha 51 (20 %) over white -> 0.2 * 100 + 0.8 * 255 = 224
    la = np.dstack([np.full((4, 4), 100, np.uint8), np.full((4, 4), 51, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png").astype(int), 224, atol=1)
    # fully transparent: a white image, not black, not an error
    Image.new("RGBA", (6, 6), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert (read_image(tmp_path / "t.png") == 255).all()


# EXIF 2.3, Orientation: where the stored image's 0th row and 0th column are shown ("visual" sides).
EXIF_TABLE = {1: ("top", "left"), 2: ("top", "right"), 3: ("bottom", "right"), 4: ("bottom", "left"),
              5: ("left", "top"), 6: ("right", "top"), 7: ("right", "bottom"), 8: ("left", "bottom")}
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def _corner(sides, shape):
    h, w = shape[:2]
    y = 0 if "top" in sides else h - 1
    x = 0 if "left" in sides else w - 1
    return y, x


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_displayed_correctly(tmp_path, orientation):
    # stored 30 x 50: red at stored (row 0, col 0), green at (row 0, last col), blue at (last row, col 0)
    stored = np.full((30, 50, 3), 128, np.uint8)
    stored[:6, :6] = (255, 0, 0)
    stored[:6, -6:] = (0, 255, 0)
    stored[-6:, :6] = (0, 0, 255)
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg").astype(int)
    assert out.shape[:2] == ((30, 50) if orientation <= 4 else (50, 30))
    row0, col0 = EXIF_TABLE[orientation]
    expect = {(255, 0, 0): (row0, col0), (0, 255, 0): (row0, OPPOSITE[col0]), (0, 0, 255): (OPPOSITE[row0], col0)}
    for colour, sides in expect.items():
        y, x = _corner(sides, out.shape)
        np.testing.assert_allclose(out[y, x], colour, atol=40, err_msg=f"{colour} not at the {sides} corner")


def test_damaged_jpeg_scan_data_decodes_to_a_finite_image(tmp_path):
    data = bytearray(_encoded(_noise(64, 64), "JPEG", quality=90))
    mid = len(data) // 2
    data[mid : mid + 40] = b"\x55" * 40  # entropy-coded garbage: libjpeg recovers with artefacts
    (tmp_path / "d.jpg").write_bytes(bytes(data))
    out = read_image(tmp_path / "d.jpg")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("kind", ["cmyk", "gif", "exif6", "rgba16"])
def test_odd_valid_files_through_the_command_line(tmp_path, run_cli, stub_reconstruct, kind):
    src = tmp_path / "in"
    src.mkdir()
    photo = _noise(40, 60)
    if kind == "cmyk":
        path = src / "p.jpg"
        Image.fromarray(photo).convert("CMYK").save(path, quality=95)
    elif kind == "gif":
        path = src / "p.gif"
        Image.fromarray(photo).save(path, save_all=True, append_images=[Image.new("RGB", (60, 40))])
    elif kind == "exif6":
        path = src / "p.jpg"
        pil = Image.fromarray(photo)
        exif = pil.getexif()
        exif[0x0112] = 6
        pil.save(path, exif=exif)
    else:
        import cv2

        path = src / "p.png"
        cv2.imwrite(str(path), np.dstack([photo[..., ::-1].astype(np.uint16) * 257, np.full((40, 60), 65535, np.uint16)]))
    out = tmp_path / "out"
    code, err = run_cli("avatar", path, "-o", out)
    assert code == cli.EXIT_OK, err
    assert "Traceback" not in err
    assert stub_reconstruct[0].shape == ((60, 40, 3) if kind == "exif6" else (40, 60, 3))
    if kind == "rgba16":
        np.testing.assert_array_equal(stub_reconstruct[0], photo)  # exact: 257 * v >> 8 == v
    _only(out, ["diffuse.png", "head.glb", "head.mtl", "head.obj", "preview.png", "report.json"])
    _no_nan_in_outputs(out)


# --------------------------------------------------------------------------------------------------
# arrays handed to public functions: NaN / inf / wrong shape / wrong dtype / empty
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from digitaltwin_jax import load_head_model

    return load_head_model("low")


def _landmarks():
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([256 + 80 * np.cos(ang), 256 + 100 * np.sin(ang)], axis=1)


def _with_inf(a):
    a = np.array(a, dtype=np.float64)
    a[3, 0] = np.inf
    return a


ARRAY_CASES = {
    # name: (call(model), exception, message pattern)
    "fit/landmarks all NaN": (lambda m: _fit(m, np.full((68, 2), np.nan)), ValueError, "at least 6 finite"),
    "fit/landmarks inf": (lambda m: _fit(m, _with_inf(_landmarks())), ValueError, r"infinite values in rows \[3\]"),
    "fit/landmarks (67, 2)": (lambda m: _fit(m, _landmarks()[:67]), ValueError, r"shape \(68, 2\)"),
    "fit/landmarks strings": (lambda m: _fit(m, _landmarks().astype(str)), TypeError, "numeric"),
    "fit/landmarks complex": (lambda m: _fit(m, _landmarks().astype(complex)), TypeError, "numeric"),
    "fit/landmarks collinear": (lambda m: _fit(m, np.c_[np.arange(68.0), np.arange(68.0)]), ValueError, "collinear"),
    "fit/image size NaN": (lambda m: _fit(m, _landmarks(), (np.nan, 512)), ValueError, "image_size"),
    "distance/points NaN": (lambda m: _p2m(np.full((4, 3), np.nan), m), ValueError, "NaN"),
    "distance/points (N, 2)": (lambda m: _p2m(np.zeros((4, 2)), m), ValueError, r"\(N, 3\)"),
    "distance/points strings": (lambda m: _p2m(np.zeros((4, 3)).astype(str), m), TypeError, "numeric"),
    "distance/points empty": (lambda m: _p2m(np.zeros((0, 3)), m), ValueError, "empty"),
    "distance/mesh inf": (lambda m: _p2m(np.zeros((4, 3)), m, verts=_with_inf(m.vertices)), ValueError, "NaN or inf"),
    "distance/mesh no faces": (lambda m: _p2m(np.zeros((4, 3)), m, faces=np.zeros((0, 3), int)), ValueError, "no faces"),
    "distance/mesh empty": (lambda m: _p2m(np.zeros((4, 3)), m, verts=np.zeros((0, 3)), faces=np.zeros((0, 3), int)),
                            ValueError, "empty"),
    "distance/faces out of range": (lambda m: _p2m(np.zeros((4, 3)), m, faces=np.asarray(m.faces) + 10_000),
                                    ValueError, "out of range"),
    "distance/faces float": (lambda m: _p2m(np.zeros((4, 3)), m, faces=np.asarray(m.faces) + 0.5), TypeError, "integer"),
    "head_shape/identity NaN": (lambda m: _hs(m, np.full(10, np.nan)), ValueError, "identity_coeffs contains NaN"),
    "head_shape/expression inf": (lambda m: _hs(m, None, np.full(m.expression_basis.shape[0], np.inf)), ValueError,
                                  "expression_coeffs contains NaN"),
    "head_shape/identity (2, 3)": (lambda m: _hs(m, np.zeros((2, 3))), ValueError, "identity_coeffs must have shape"),
    "head_shape/expression (3,)": (lambda m: _hs(m, None, np.zeros(3)), ValueError, "expression_coeffs must have shape"),
    "head_shape/identity strings": (lambda m: _hs(m, np.array(["1", "2"])), TypeError, "numeric"),
    "render/vertices NaN": (lambda m: _render(m, v=np.full((len(m.vertices), 3), np.nan)), ValueError, "non-finite"),
    "render/vertices (V, 2)": (lambda m: _render(m, v=np.zeros((len(m.vertices), 2))), ValueError, r"\(V, 3\)"),
    "render/vertices strings": (lambda m: _render(m, v=_cam(m).astype(str)), TypeError, "numeric"),
    "render/faces out of range": (lambda m: _render(m, f=np.asarray(m.faces) + 10_000), ValueError, "indices in"),
    "render/K NaN": (lambda m: _render(m, K=np.full((3, 3), np.nan)), ValueError, "K contains NaN"),
    "texture/image NaN": (lambda m: _project(m, np.full((64, 64, 3), np.nan)), ValueError, "non-finite"),
    "texture/image (H, W)": (lambda m: _project(m, np.zeros((64, 64))), ValueError, r"\(H, W, 3\)"),
    "texture/image int64": (lambda m: _project(m, np.zeros((64, 64, 3), np.int64)), TypeError, "uint8 or float"),
    "texture/image empty": (lambda m: _project(m, np.zeros((0, 64, 3), np.uint8)), ValueError, "positive"),
    "texture/face region NaN landmarks": (lambda m: _face_region(np.full((68, 2), np.nan)), ValueError, "finite"),
    "reconstruct/float image": (lambda m: _reconstruct(m, np.full((64, 64, 3), np.nan)), ValueError, "uint8"),
    "reconstruct/RGBA image": (lambda m: _reconstruct(m, np.zeros((64, 64, 4), np.uint8)), ValueError, r"\(H, W, 3\)"),
    "reconstruct/empty image": (lambda m: _reconstruct(m, np.zeros((0, 0, 3), np.uint8)), ValueError, "empty"),
    "detect/NaN float image": (lambda m: _detect(np.full((64, 64, 3), np.nan)), ValueError, "NaN"),
    "detect/(H, W, 2) image": (lambda m: _detect(np.zeros((64, 64, 2), np.uint8)), ValueError, "shape"),
    "write_glb/empty mesh": (lambda m: _glb(np.zeros((0, 3)), np.zeros((0, 3), int)), ValueError, "empty"),
    "write_obj/NaN vertices": (lambda m: _obj(np.full((3, 3), np.nan), np.array([[0, 1, 2]])), ValueError, "NaN"),
}


def _fit(m, lm, size=(512, 512)):
    from digitaltwin_jax.fitting import fit

    return fit(m, lm, size)


def _p2m(points, m, verts=None, faces=None):
    from digitaltwin_jax.evaluation import point_to_mesh_distance

    return point_to_mesh_distance(points, m.vertices if verts is None else verts, m.faces if faces is None else faces)


def _hs(m, a, b=None):
    from digitaltwin_jax import head_shape

    return head_shape(m, a, b)


def _cam(m):
    return np.asarray(m.vertices, np.float64) + [0.0, 0.0, 600.0]


_K = np.array([[500.0, 0, 32], [0, 500, 32], [0, 0, 1]])


def _render(m, v=None, f=None, K=_K):
    from digitaltwin_jax.render import render_mesh

    return render_mesh(_cam(m) if v is None else v, m.faces if f is None else f, K, (64, 64))


def _project(m, image):
    from digitaltwin_jax.texture.projection import project_texture

    return project_texture(image, _cam(m), _K, m, 64)


def _face_region(lm):
    from digitaltwin_jax.texture.face_region import face_region_mask

    return face_region_mask(lm, (64, 64))


def _refuse(*a, **k):
    raise AssertionError("a stage ran on an input that should have been refused")


def _reconstruct(m, image):
    from digitaltwin_jax import frontend
    from digitaltwin_jax.pipeline import AvatarConfig, Stages, reconstruct

    stages = Stages(detect=frontend.detect_faces, embed=_refuse, shape=_refuse, fit=_refuse, texture=_refuse)
    return reconstruct(image, config=AvatarConfig(texture_size=64), stages=stages, model=m)


def _detect(image):
    from digitaltwin_jax.frontend import detect_faces

    return detect_faces(image)


def _glb(v, f):
    from digitaltwin_jax.io import write_glb

    return write_glb(os.path.join(_glb.dir, "x.glb"), v, f)


def _obj(v, f):
    from digitaltwin_jax.io import write_obj

    return write_obj(os.path.join(_glb.dir, "x.obj"), v, f)


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_bad_array_gets_a_clear_error(model, tmp_path, case):
    call, exc, pattern = ARRAY_CASES[case]
    _glb.dir = str(tmp_path)
    with pytest.raises(exc, match=pattern):
        call(model)
    assert list(tmp_path.iterdir()) == []  # writers left nothing behind


def test_head_shape_checks_do_not_break_jit_or_grad(model):
    import jax
    import jax.numpy as jnp

    from digitaltwin_jax import head_shape

    a = jnp.zeros(5)
    v = jax.jit(lambda x: head_shape(model, x))(a)
    np.testing.assert_allclose(np.asarray(v), np.asarray(model.vertices), atol=1e-5)
    g = jax.grad(lambda x: head_shape(model, x)[0, 0])(a)
    np.testing.assert_allclose(np.asarray(g), np.asarray(model.identity_basis)[:5, 0, 0], rtol=1e-5)


def test_empty_mesh_renders_the_background(model):
    from digitaltwin_jax.render import render_mesh

    img, mask = render_mesh(np.zeros((0, 3)), np.zeros((0, 3), int), _K, (16, 16), background=(0.2, 0.4, 0.6))
    np.testing.assert_allclose(img, np.broadcast_to([0.2, 0.4, 0.6], (16, 16, 3)), atol=1e-6)
    assert (mask == 0).all()


# --------------------------------------------------------------------------------------------------
# output folders: exists, read-only, missing, a file in the way, full disk
# --------------------------------------------------------------------------------------------------
def _read_only(folder: Path, monkeypatch):
    """Make ``folder`` unwritable: chmod for normal users; root ignores permissions, so simulate."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    real_mkdir, real_open = os.mkdir, os.open

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def mkdir(path, mode=0o777, *a, **k):
        if Path(path).parent == folder:
            raise denied(path)
        return real_mkdir(path, mode, *a, **k)

    def open_(path, flags, *a, **k):  # creating a file (tempfile.mkstemp) in the folder
        if flags & os.O_CREAT and Path(path).parent == folder:
            raise denied(path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_write_avatar_to_a_read_only_folder(tmp_path, monkeypatch):
    from digitaltwin_jax.pipeline import write_avatar

    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(ro, monkeypatch)
    try:
        with pytest.raises(errors.OutputWriteError, match="Permission denied") as info:
            write_avatar(_tiny_avatar(), ro / "me")
        assert isinstance(info.value, ValueError) and isinstance(info.value, OSError)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_write_avatar_creates_missing_folders_and_removes_them_on_failure(tmp_path, monkeypatch):
    import digitaltwin_jax.io.obj as obj
    from digitaltwin_jax.pipeline import write_avatar

    out = write_avatar(_tiny_avatar(), tmp_path / "a" / "b" / "me")
    _only(out, ["diffuse.png", "head.glb", "head.mtl", "head.obj", "report.json"])
    monkeypatch.setattr(obj, "write_obj", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(errors.OutputWriteError, match="I/O error"):
        write_avatar(_tiny_avatar(), tmp_path / "x" / "y" / "me")
    _only(tmp_path, ["a"])  # x/ and x/y/ were created for the write and removed with it


def test_write_avatar_with_a_file_in_the_way(tmp_path):
    from digitaltwin_jax.pipeline import reconstruct_file, write_avatar

    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(errors.OutputWriteError, match="taken"):
        write_avatar(_tiny_avatar(), tmp_path / "taken" / "me")
    with pytest.raises(errors.OutputWriteError, match="is a file"):
        reconstruct_file(EXAMPLE, tmp_path / "taken" / "me")  # refused before any work
    _only(tmp_path, ["taken"])


@pytest.mark.parametrize("old", [False, True])
def test_full_disk_mid_write_leaves_nothing_and_keeps_the_old_avatar(tmp_path, monkeypatch, old):
    import digitaltwin_jax.io.obj as obj
    from digitaltwin_jax.pipeline import write_avatar

    out = tmp_path / "root" / "me"
    if old:
        out.mkdir(parents=True)
        (out / "head.obj").write_text("old avatar")
    written = []

    def full_disk(path, *a, **k):  # diffuse.png is already written; the OBJ gets half-way
        written.extend(p.name for p in Path(path).parent.iterdir())
        Path(path).write_text("v 0 0 0\nv 1 ")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(obj, "write_obj", full_disk)
    with pytest.raises(errors.OutputWriteError, match="No space left on device") as info:
        write_avatar(_tiny_avatar(), out, overwrite=old)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert written == ["diffuse.png"]  # the failure really came after the first file
    if old:
        _only(tmp_path / "root", ["me"])
        assert (out / "head.obj").read_text() == "old avatar"
        _only(out, ["head.obj"])
    else:
        assert not (tmp_path / "root").exists()  # nothing at all, not even the created parent


def test_full_disk_on_the_last_file(tmp_path, monkeypatch):
    import pathlib

    from digitaltwin_jax.pipeline import write_avatar

    real = pathlib.Path.write_text

    def write_text(self, data, *a, **k):
        if self.name == "report.json":
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data, *a, **k)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    with pytest.raises(errors.OutputWriteError, match="No space"):
        write_avatar(_tiny_avatar(), tmp_path / "me")
    assert list(tmp_path.iterdir()) == []


def test_avatar_with_nan_is_not_written(tmp_path):
    import dataclasses

    from digitaltwin_jax.pipeline import write_avatar

    bad = dataclasses.replace(_tiny_avatar(), vertices=np.full((3, 3), np.nan, np.float32))
    with pytest.raises(errors.FitError, match="avatar.vertices contains NaN"):
        write_avatar(bad, tmp_path / "me")
    with pytest.raises(ValueError, match="photo"):
        write_avatar(_tiny_avatar(), tmp_path / "me", photo=np.zeros((5, 5, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []
    write_avatar(_tiny_avatar(), tmp_path / "ok")
    _no_nan_in_outputs(tmp_path / "ok")  # NaN reprojection errors (missing landmarks) become null


def test_cli_existing_output_without_overwrite(tmp_path, run_cli, stub_reconstruct):
    out = tmp_path / "out"
    out.mkdir()
    (out / "head.obj").write_text("old avatar")
    code, err = run_cli("avatar", EXAMPLE, "-o", out)
    _assert_clean_error(code, err, cli.EXIT_OUTPUT, "exists", "--overwrite")
    assert (out / "head.obj").read_text() == "old avatar" and stub_reconstruct == []


def test_cli_read_only_output(tmp_path, run_cli, stub_reconstruct, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(ro, monkeypatch)
    try:
        code, err = run_cli("avatar", EXAMPLE, "-o", ro / "me")
        _assert_clean_error(code, err, cli.EXIT_OUTPUT, "permission denied")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_cli_full_disk(tmp_path, run_cli, stub_reconstruct, monkeypatch):
    import digitaltwin_jax.io.gltf as gltf

    monkeypatch.setattr(gltf, "write_glb", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    code, err = run_cli("avatar", EXAMPLE, "-o", tmp_path / "out" / "me")
    _assert_clean_error(code, err, cli.EXIT_OUTPUT, "no space left")
    _only(tmp_path, ["jax-cache"])


def test_cli_batch_into_a_read_only_root(tmp_path, run_cli, stub_reconstruct, monkeypatch):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(_noise()).save(src / "a.png")
    (src / "b.png").write_bytes(_png_declaring(100_000, 100_000))
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(ro, monkeypatch)
    try:
        code, err = run_cli("avatar", "--batch", src, "-o", ro, "--workers", "1")  # the stub lives in this process
        _assert_clean_error(code, err, cli.EXIT_OUTPUT, "batch_report.json")
        assert "failed a.png" in run_cli.out + err and "failed b.png" in run_cli.out + err  # the batch went on
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
