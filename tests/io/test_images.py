"""read_image / write_image on files generated from the example photo (and on broken files)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax.io.images import ImageReadError, read_image, to_uint8_rgb, write_image

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLE).convert("RGB"))[100:228, 150:310].copy()  # 128 x 160, not square


def test_rgb_png_roundtrip_is_exact(tmp_path, photo):
    path = write_image(tmp_path / "a.png", photo)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    np.testing.assert_array_equal(out, photo)
    assert read_image(str(path)).shape == photo.shape  # str paths too


def test_float_input_and_jpeg(tmp_path, photo):
    write_image(tmp_path / "f.png", photo.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png"), photo)
    write_image(tmp_path / "q.jpg", photo, quality=95)
    assert np.abs(read_image(tmp_path / "q.jpg").astype(int) - photo).mean() < 3


def test_rgba_is_composited_over_the_background(tmp_path, photo):
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[:, 40:80] = 255
    alpha[:, 80:120] = 128
    Image.fromarray(np.dstack([photo, alpha]), "RGBA").save(tmp_path / "rgba.png")
    out = read_image(tmp_path / "rgba.png")
    a = alpha[..., None] / 255.0
    np.testing.assert_allclose(out, photo * a + 255.0 * (1 - a), atol=0.51)
    black = read_image(tmp_path / "rgba.png", background=(0, 0, 0))
    np.testing.assert_allclose(black, photo * a, atol=0.51)


def test_palette_with_transparent_colour(tmp_path):
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png", transparency=1)
    out = read_image(tmp_path / "p.png", background=(0, 255, 0))
    expected = np.where(np.array([0, 1, 0, 1, 1, 0, 1, 0]).reshape(2, 4, 1) == 0, [255, 0, 0], [0, 255, 0])
    np.testing.assert_array_equal(out, expected)


def test_grayscale_is_expanded(tmp_path, photo):
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == photo.shape
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)
    Image.fromarray(gray > 128).save(tmp_path / "b.png")  # 1-bit
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[..., 1], np.where(gray > 128, 255, 0))


def test_16_bit_png_is_scaled_to_8_bit(tmp_path, photo):
    cv2.imwrite(str(tmp_path / "c16.png"), photo[..., ::-1].astype(np.uint16) * 257)  # RGB 16-bit
    np.testing.assert_array_equal(read_image(tmp_path / "c16.png"), photo)
    gray = photo[..., 1]
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], gray)
    ramp = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)  # arbitrary 16-bit values
    Image.fromarray(ramp).save(tmp_path / "r16.png")
    np.testing.assert_allclose(read_image(tmp_path / "r16.png")[..., 0], ramp / 257.0, atol=1.0)


# EXIF orientation k: how to turn the stored pixels into the displayed image (EXIF 2.3, Orientation tag)
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, photo, orientation):
    pil = Image.fromarray(photo)
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(tmp_path / "o.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), DISPLAY[orientation](photo))


def test_exif_rotated_jpeg(tmp_path, photo):
    pil = Image.fromarray(photo)
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (photo.shape[1], photo.shape[0], 3)
    assert np.abs(out.astype(int) - np.rot90(photo, k=-1)).mean() < 3


def test_cmyk_jpeg(tmp_path, photo):
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "cmyk.jpg").astype(int) - photo).mean() < 4


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.jpg.*file not found") as info:
        read_image(tmp_path / "nothere.jpg")
    assert isinstance(info.value, ValueError)
    assert info.value.path.endswith("nothere.jpg")


def test_directory(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all\n" * 40, os.urandom(5000)])
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "garbage.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"garbage\.png"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path, photo, suffix):
    full = tmp_path / f"full{suffix}"
    write_image(full, photo)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=rf"cut\{suffix}.*(truncated|corrupt)"):
        read_image(cut)


def test_write_is_atomic_and_replaces(tmp_path, photo):
    dest = tmp_path / "sub" / "out.png"
    write_image(dest, photo)
    write_image(dest, photo[::-1])  # replace an existing file
    np.testing.assert_array_equal(read_image(dest), photo[::-1])
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.png"]  # no temporary files left
    mask = os.umask(0)
    os.umask(mask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    before = dest.read_bytes()
    bad = photo.astype(np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_image(dest, bad)
    with pytest.raises(ValueError, match="format"):
        write_image(tmp_path / "out.unknown", photo)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.png"]


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_write_failure_mid_save_leaves_no_temp(tmp_path, photo, monkeypatch, suffix):
    import digitaltwin_jax.io.images as images

    dest = tmp_path / f"x{suffix}"

    def boom(self, fp, format=None, **kw):  # Pillow's encoders (JPEG, WebP, RGBA PNG)
        fp.write(b"partial")
        raise OSError("disk full")

    def boom_png(*a, **kw):  # our PNG encoder, called inside the atomic write
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    monkeypatch.setattr(images, "png_bytes", boom_png)
    with pytest.raises(OSError, match="disk full"):
        write_image(dest, photo)
    assert list(tmp_path.iterdir()) == []


def test_write_rgba_and_gray(tmp_path, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    write_image(tmp_path / "rgba.png", rgba)
    assert Image.open(tmp_path / "rgba.png").mode == "RGBA"
    write_image(tmp_path / "g.png", photo[..., 0])
    assert Image.open(tmp_path / "g.png").mode == "L"


def test_to_uint8_rgb_validation():
    with pytest.raises(TypeError, match="dtype"):
        to_uint8_rgb(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="shape"):
        to_uint8_rgb(np.zeros((4, 4, 5), np.uint8))
    np.testing.assert_array_equal(to_uint8_rgb(np.full((2, 2), 1.0)), np.full((2, 2, 3), 255, np.uint8))


def test_png_bytes_is_lossless_rgb_and_grey():
    import io as _io

    from PIL import Image as _Image

    from digitaltwin_jax.io.images import png_bytes

    rng = np.random.default_rng(3)
    rgb = (rng.uniform(size=(37, 53, 3)) * 255).astype(np.uint8)
    data = png_bytes(rgb)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = _Image.open(_io.BytesIO(data))
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), rgb)
    grey = np.linspace(0.0, 1.0, 37 * 53).reshape(37, 53)  # float in [0, 1] -> rounded uint8
    back = _Image.open(_io.BytesIO(png_bytes(grey)))
    assert back.mode == "L" and np.array_equal(np.asarray(back), np.rint(grey * 255).astype(np.uint8))


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
@pytest.mark.parametrize("shape", [(1, 5, 3), (2, 1, 3), (61, 47, 3), (300, 257), (5, 9, 1)])
def test_png_bytes_bands_join_into_one_valid_stream(shape, threads):
    """The parallel encoder's output decodes bit-exactly with two independent decoders (Pillow and
    OpenCV's libpng), whatever the number of bands, including more bands than rows."""
    import io as _io

    import cv2
    from PIL import Image as _Image

    from digitaltwin_jax.io.images import png_bytes

    rng = np.random.default_rng(sum(shape) + threads)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    img[: shape[0] // 2] //= 7  # runs and smooth parts as well as noise
    data = png_bytes(img, threads=threads)
    want = img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img
    back = np.asarray(_Image.open(_io.BytesIO(data)))
    assert np.array_equal(back, want)
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if dec.ndim == 3:
        dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
    assert np.array_equal(dec, want)
