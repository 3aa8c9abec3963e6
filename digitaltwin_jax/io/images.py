"""Reading and writing photos as ``(H, W, 3) uint8`` RGB arrays (the front end's input, paper section 3.4).

:func:`read_image` turns whatever a person hands us into one array convention:

- the EXIF orientation tag is applied, so the array is what a photo viewer displays (landmarks found
  on it are in the displayed orientation);
- transparency (RGBA, LA, palette with a transparent colour) is composited over a background colour;
- grayscale and bilevel images are expanded to three equal channels; CMYK / YCbCr / LAB are converted;
- 16-bit samples are reduced to 8 bits by keeping the high byte (``v >> 8``, which is what Pillow does
  for 16-bit RGB PNG, applied to 16-bit grayscale too so both agree).

Any failure (missing file, directory, not an image, truncated or corrupt data, absurd size) raises
:class:`ImageReadError`, a ``ValueError`` whose message names the file.

:func:`write_image` writes atomically (``io.atomic``: a temporary file in the destination folder, then
``os.replace``; the file gets the usual umask permissions).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitaltwin_jax.io.atomic import atomic_write

__all__ = ["ImageReadError", "read_image", "write_image", "to_uint8_rgb"]


class ImageReadError(ValueError):
    """A file could not be read as an image.  ``path`` names the file, ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path!r}: {reason}")


def read_image(path, *, background=(255, 255, 255)) -> np.ndarray:
    """Read a photo as displayed: ``(H, W, 3) uint8`` RGB.

    Args:
      path: file name (str or os.PathLike).  Any format Pillow reads (JPEG, PNG, WebP, TIFF, BMP, ...);
        for multi-frame files the first frame is used.
      background: RGB colour that transparent pixels are composited over (default white).

    Returns:
      ``(H, W, 3) uint8`` RGB array, EXIF orientation applied.

    Raises:
      ImageReadError: missing file, a directory, not an image, truncated/corrupt data, or an image
        larger than Pillow's decompression-bomb limit.  The message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(path, "file not found")
    if p.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    try:
        with Image.open(p) as im:
            im.load()  # decode now so truncation is caught here, not later
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb(im, background)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format (or the data is corrupt)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"image is too large to decode safely ({e})") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError) as e:
        raise ImageReadError(path, f"file is truncated or corrupt ({type(e).__name__}: {e})") from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(path, "image has zero width or height")
    return arr


def _to_rgb(im: Image.Image, background) -> np.ndarray:
    """Pillow image of any mode -> ``(H, W, 3) uint8`` RGB (alpha composited over ``background``)."""
    bg = np.asarray(background, dtype=np.float64).reshape(-1)
    if bg.shape != (3,) or not np.all((bg >= 0) & (bg <= 255)):
        raise ValueError(f"background must be three values in [0, 255], got {background!r}")
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.int64)
        a = np.clip(a, 0, 65535) >> 8  # high byte, see module docstring
        return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("floating-point image contains NaN or infinity")
        scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0  # [0, 1] floats, else assume 0..255
        a = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        out = rgba[..., :3] * alpha + bg * (1.0 - alpha)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def to_uint8_rgb(image, *, name: str = "image") -> np.ndarray:
    """Validate an image array and return it as contiguous ``(H, W, 3) uint8`` RGB.

    Accepts ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha dropped) arrays of
    dtype uint8, or floating point in [0, 1] (rounded to uint8).  Raises TypeError for other dtypes
    and ValueError for other shapes, empty images, NaN or out-of-range floats.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinity")
        if a.min() < 0.0 or a.max() > 1.0:
            raise ValueError(f"float {name} must lie in [0, 1]; got range [{a.min():.3g}, {a.max():.3g}]")
        a = np.rint(a * 255.0).astype(np.uint8)
    else:
        raise TypeError(f"{name} must be uint8 or float in [0, 1]; got dtype {a.dtype}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def write_image(path, image, *, quality: int = 95) -> Path:
    """Write an image atomically (temporary file in the same folder, then ``os.replace``).

    Args:
      path: destination; the format follows the suffix (``.png``, ``.jpg``, ``.webp``, ...).
      image: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array, uint8 or float in [0, 1].
        Four channels are written as RGBA where the format supports it (PNG, WebP, TIFF).
      quality: JPEG / WebP quality.

    Returns:
      The destination path.  On any error the destination is left untouched and no temporary file
      remains.
    """
    dest = Path(path)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the suffix of {os.fspath(path)!r}")
    a = np.asarray(image)
    rgba = a.ndim == 3 and a.shape[2] == 4 and fmt in ("PNG", "WEBP", "TIFF")
    if rgba:
        rgb = to_uint8_rgb(a[..., :3])
        alpha = to_uint8_rgb(a[..., 3])[..., 0]
        pil = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    elif a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        pil = Image.fromarray(to_uint8_rgb(a)[..., 0], mode="L")
    else:
        pil = Image.fromarray(to_uint8_rgb(a), mode="RGB")
    dest.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    with atomic_write(dest, "wb") as fh:
        pil.save(fh, format=fmt, **kwargs)
    return dest
