"""Backgrounds for the synthetic renders (paper section 3.2: "the background of rendered images are
randomized with a large collection of indoor and outdoor images").

No photographs ship with the package (none with a redistributable licence was available offline);
backgrounds are procedural, drawn from five families that mimic what is behind a selfie, each
defocused by a random amount (portrait depth of field):

* ``studio``: a smooth backdrop with a radial light fall-off and vignette;
* ``indoor``: a wall (gradient + low-frequency texture) with door/window/shelf/picture rectangles,
  some bright (windows, lamps), and a floor or ceiling band;
* ``outdoor``: sky (clear blue, hazy or overcast) over a horizon of foliage/buildings made of
  fractal noise blobs and a ground band;
* ``bokeh``: a dark or coloured base with many blurred light discs (city lights, fairy lights);
* ``texture``: a close surface: brick/tile grid, wood-like stripes or stone noise.

:class:`PhotoBackgrounds` adds user-supplied photos (random crop, flip, scale; any folder of
JPEG/PNG files).  All functions return **linear** RGB float32 ``(H, W, 3)`` in [0, 1].
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from digitaltwin_jax.render.colorspace import srgb_to_linear

__all__ = ["BACKGROUND_KINDS", "PROCEDURAL_KINDS", "PROCEDURAL_WEIGHTS", "procedural_background", "PhotoBackgrounds"]

BACKGROUND_KINDS = ("studio", "indoor", "outdoor", "bokeh", "texture", "photo")
PROCEDURAL_KINDS = BACKGROUND_KINDS[:5]
PROCEDURAL_WEIGHTS = (0.15, 0.35, 0.25, 0.1, 0.15)


def _noise(rng, h, w, cells):
    """Smooth noise in [-1, 1]-ish: random values on a ``cells`` grid, bicubically upsampled."""
    cy = max(2, int(round(cells * h / max(h, w))))
    cx = max(2, int(round(cells * w / max(h, w))))
    g = rng.standard_normal((cy + 3, cx + 3)).astype(np.float32)
    up = cv2.resize(g, (w + int(3 * w / cx), h + int(3 * h / cy)), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, up.shape[0] - h)))
    ox = int(rng.integers(0, max(1, up.shape[1] - w)))
    return up[oy:oy + h, ox:ox + w]


def _fractal(rng, h, w, base_cells=3, octaves=4):
    out = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    cells = base_cells
    for _ in range(octaves):
        out += amp * _noise(rng, h, w, cells)
        tot += amp
        amp *= 0.55
        cells *= 2
    return out / tot


def _random_color(rng, sat=(0.05, 0.5), val=(0.15, 0.9)):
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0
    return srgb_to_linear(rgb)


def _studio(rng, h, w):
    c = _random_color(rng, (0.0, 0.45), (0.2, 0.95))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.6) * h
    r = np.hypot(xx - cx, yy - cy) / max(h, w)
    fall = 1.0 - rng.uniform(0.3, 0.8) * np.clip(r, 0, 1.2)
    img = c * fall[..., None]
    return img * (1.0 + 0.04 * _fractal(rng, h, w, 2, 2))[..., None]


def _indoor(rng, h, w):
    wall = _random_color(rng, (0.0, 0.35), (0.25, 0.9))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    grad = 1.0 + rng.uniform(-0.4, 0.4) * (xx - 0.5) + rng.uniform(-0.3, 0.3) * (yy - 0.5)
    img = wall * grad[..., None] * (1.0 + 0.08 * _fractal(rng, h, w, 3, 3))[..., None]
    for _ in range(int(rng.integers(1, 6))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        bw, bh = rng.uniform(0.1, 0.6) * w, rng.uniform(0.1, 0.8) * h
        kind = rng.random()
        if kind < 0.25:  # window / lamp: bright, slightly blue or warm
            col = _random_color(rng, (0.0, 0.15), (0.85, 1.0)) * rng.uniform(1.0, 2.5)
        else:
            col = _random_color(rng, (0.0, 0.6), (0.05, 0.85))
        y1, y2 = int(max(0, y0)), int(min(h, y0 + bh))
        x1, x2 = int(max(0, x0)), int(min(w, x0 + bw))
        if y2 > y1 and x2 > x1:
            img[y1:y2, x1:x2] = col * (1.0 + 0.05 * _noise(rng, y2 - y1, x2 - x1, 3))[..., None]
            if rng.random() < 0.5:  # frame
                t = max(1, int(rng.uniform(0.01, 0.03) * w))
                fc = _random_color(rng, (0.0, 0.4), (0.05, 0.7))
                img[y1:y1 + t, x1:x2] = fc
                img[max(y2 - t, 0):y2, x1:x2] = fc
                img[y1:y2, x1:x1 + t] = fc
                img[y1:y2, max(x2 - t, 0):x2] = fc
    if rng.random() < 0.5:  # floor or ceiling band
        cut = int(rng.uniform(0.6, 0.95) * h)
        floor = _random_color(rng, (0.0, 0.5), (0.05, 0.6))
        img[cut:] = floor * (1.0 + 0.1 * _fractal(rng, h - cut, w, 4, 3))[..., None]
    return img


def _outdoor(rng, h, w):
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    kind = rng.random()
    if kind < 0.5:  # clear sky
        top = srgb_to_linear(np.array([rng.uniform(0.2, 0.45), rng.uniform(0.45, 0.65), rng.uniform(0.8, 1.0)],
                                      np.float32))
        bot = srgb_to_linear(np.array([0.75, 0.85, 0.95], np.float32))
    elif kind < 0.8:  # overcast
        g = rng.uniform(0.6, 0.95)
        top = srgb_to_linear(np.array([g, g, g * 1.02], np.float32).clip(0, 1))
        bot = top * 1.05
    else:  # sunset
        top = srgb_to_linear(np.array([0.35, 0.4, 0.7], np.float32))
        bot = srgb_to_linear(np.array([1.0, 0.7, 0.45], np.float32))
    sky = top * (1 - yy[..., None]) + bot * yy[..., None]
    sky = np.broadcast_to(sky, (h, w, 3)).copy()
    clouds = np.clip(_fractal(rng, h, w, 3, 4) * 1.5, 0, 1)[..., None] * rng.uniform(0, 0.6)
    sky = sky * (1 - clouds) + clouds * np.float32(0.9)
    horizon = rng.uniform(0.3, 0.85)
    edge = horizon + 0.15 * _fractal(rng, 1, w, 4, 4)[0] + 0.1 * _fractal(rng, 1, w, 12, 2)[0]
    mask = (yy > edge[None, :]).astype(np.float32)
    if rng.random() < 0.6:  # foliage
        base = srgb_to_linear(np.array([rng.uniform(0.15, 0.4), rng.uniform(0.3, 0.55), rng.uniform(0.1, 0.3)],
                                       np.float32))
    else:  # buildings / rocks
        base = _random_color(rng, (0.0, 0.3), (0.2, 0.7))
    tex = np.clip(1.0 + 0.6 * _fractal(rng, h, w, 8, 4), 0.2, 2.0)
    ground = base * tex[..., None]
    img = sky * (1 - mask[..., None]) + ground * mask[..., None]
    if rng.random() < 0.7:  # ground band
        cut = int(rng.uniform(0.75, 1.0) * h)
        gcol = _random_color(rng, (0.0, 0.4), (0.2, 0.6))
        img[cut:] = gcol * (1.0 + 0.2 * _fractal(rng, h - cut, w, 10, 3))[..., None] if cut < h else img[cut:]
    return img


def _bokeh(rng, h, w):
    base = _random_color(rng, (0.0, 0.8), (0.02, 0.35))
    img = np.broadcast_to(base, (h, w, 3)).copy()
    n = int(rng.integers(10, 60))
    layer = np.zeros((h, w, 3), np.float32)
    for _ in range(n):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = int(rng.uniform(0.02, 0.09) * max(h, w))
        col = _random_color(rng, (0.0, 0.9), (0.5, 1.0)) * rng.uniform(0.3, 1.5)
        cv2.circle(layer, c, r, tuple(float(x) for x in col), -1, lineType=cv2.LINE_AA)
    return img + layer


def _texture(rng, h, w):
    kind = rng.random()
    c1 = _random_color(rng, (0.1, 0.6), (0.2, 0.8))
    if kind < 0.4:  # bricks / tiles
        bh = int(rng.uniform(0.04, 0.12) * h) + 2
        bw = int(bh * rng.uniform(1.0, 3.0)) + 2
        yy, xx = np.mgrid[0:h, 0:w]
        row = yy // bh
        xs = xx + (row % 2) * (bw // 2)
        mortar = ((yy % bh) < max(1, bh // 10)) | ((xs % bw) < max(1, bw // 15))
        cell = (row * 7919 + xs // bw * 104729) % 97 / 97.0
        img = c1 * (0.8 + 0.4 * cell)[..., None].astype(np.float32)
        img[mortar] = _random_color(rng, (0.0, 0.2), (0.3, 0.8))
        img *= (1.0 + 0.1 * _fractal(rng, h, w, 12, 3))[..., None]
    elif kind < 0.7:  # wood-like stripes
        xx = np.mgrid[0:h, 0:w][1].astype(np.float32) / w
        warp = 0.05 * _fractal(rng, h, w, 3, 3)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(8, 30) * (xx + warp))
        img = c1 * (0.75 + 0.35 * stripes)[..., None]
    else:  # stone / plaster
        img = c1 * np.clip(1.0 + 0.35 * _fractal(rng, h, w, 6, 5), 0.3, 2.0)[..., None]
    return img


_FAMILIES = {"studio": _studio, "indoor": _indoor, "outdoor": _outdoor, "bokeh": _bokeh, "texture": _texture}


def procedural_background(rng: np.random.Generator, height: int, width: int, kind: str | None = None,
                          *, blur_sigma=None, resolution_scale: float = 1.0):
    """A random procedural background.

    Args:
      rng: numpy Generator (consumed).
      height, width: output size.
      kind: one of ``studio, indoor, outdoor, bokeh, texture`` or None for a random one (weights
        0.15, 0.35, 0.25, 0.1, 0.15).
      blur_sigma: defocus in pixels, None for random ``U(0, 0.02) * max(h, w)`` (bokeh: 1.5x).
      resolution_scale: generate at this fraction of the size, then resize (bilinear): 0.5 is 4x
        cheaper and, with the usual defocus, looks the same.

    Returns:
      ``(image (H, W, 3) float32 linear RGB in [0, 1], kind)``.
    """
    H, W = int(height), int(width)
    sc = float(resolution_scale)
    if not 0.0 < sc <= 1.0:
        raise ValueError(f"resolution_scale must be in (0, 1], got {resolution_scale}")
    h, w = max(8, int(round(H * sc))), max(8, int(round(W * sc)))
    if kind is None:
        kind = str(rng.choice(PROCEDURAL_KINDS, p=PROCEDURAL_WEIGHTS))
    if kind not in _FAMILIES:
        raise ValueError(f"unknown background kind {kind!r}; known: {', '.join(_FAMILIES)}")
    img = _FAMILIES[kind](rng, h, w).astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    sigma = rng.uniform(0.0, 0.02) * max(h, w) if blur_sigma is None else float(blur_sigma)
    if kind == "bokeh":
        sigma = 1.5 * sigma + 0.01 * max(h, w)
    if sigma > 0.3:
        img = cv2.GaussianBlur(np.ascontiguousarray(img), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    if (h, w) != (H, W):
        img = cv2.resize(np.ascontiguousarray(img), (W, H), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0.0, 1.0).astype(np.float32), kind


@dataclasses.dataclass(frozen=True)
class PhotoBackgrounds:
    """Backgrounds cut from a folder of photos (user-supplied; none ship with the package).

    Attributes:
      paths: the image files (``.jpg``, ``.jpeg``, ``.png``), sorted.
    """

    paths: tuple[str, ...]

    @classmethod
    def from_folder(cls, folder) -> "PhotoBackgrounds":
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"background folder {folder} does not exist")
        paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise ValueError(f"no .jpg/.jpeg/.png files in {folder}")
        return cls(tuple(paths))

    def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random crop (scale 0.3-1 of the shorter side), flipped half the time, resized to
        ``(height, width)``; linear RGB float32."""
        path = self.paths[int(rng.integers(len(self.paths)))]
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read background photo {path}")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        ih, iw = img.shape[:2]
        side = int(min(ih, iw) * rng.uniform(0.3, 1.0))
        aspect = width / height
        ch, cw = (side, int(side * aspect)) if aspect <= 1 else (int(side / aspect), side)
        ch, cw = max(1, min(ch, ih)), max(1, min(cw, iw))
        y0 = int(rng.integers(0, ih - ch + 1))
        x0 = int(rng.integers(0, iw - cw + 1))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.resize(np.ascontiguousarray(crop), (int(width), int(height)), interpolation=cv2.INTER_AREA)
        return srgb_to_linear(crop.astype(np.float32) / 255.0)
