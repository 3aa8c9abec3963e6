"""Eyeballs for the avatar (issue 19 item 4): sphere meshes behind the head's eye openings with an
iris whose colour is sampled from the photo.

The head asset keeps only the skin surface (the paper removes eyes, teeth and tongue, section 3.2), so
its eye openings are holes (:mod:`digitaltwin_jax.model.openings`).  ICT-FaceKit's own eyeball
meshes are not in the shipped asset; as the synthetic renderer does (:mod:`digitaltwin_jax.synth.eyes`),
each eye is a sphere of radius ``radius`` mm (adult eyeball 11.5-12.5 mm) whose front pole lies
``protrusion`` mm in front of the opening's centroid, pushed back until every head vertex near the
eye is at least ``clearance`` mm outside it (so it never pokes through the eyelids of the neutral head).
Its axis points at the photo's camera (portraits look into the lens), at most ``max_gaze_deg`` from
the head's +z.  A dark socket cone from the opening's rim (moved ``socket_inset`` mm into the head)
to a point behind the eyeball hides the inside of the head between the lids and the sphere.

Texture (``(S, S, 3) uint8`` sRGB, one map for both eyes): a Lambert azimuthal equal-area layout
around the eye's axis, ``uv = 0.5 + 0.5 sin(theta / 2) (cos phi, sin phi)`` (theta: angle from the
axis), so the iris (``theta < iris_angle``; human iris ~11.7 mm across: 0.51 rad on a 12 mm ball) gets
a large share of the texels.  Pupil ``theta < pupil_angle``, a darker limbal ring, faint radial
streaks; sclera and iris colours from the photo (:func:`sample_eye_colours`).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.model.openings import find_openings

__all__ = ["EyeConfig", "EyeColours", "Eyes", "sample_eye_colours", "eye_texture", "eyeball_mesh",
           "build_eyes", "preview_mesh"]

#: Fallback colours (sRGB) when the photo's eye region cannot be read: a mid brown iris, off-white sclera.
DEFAULT_IRIS = (0.36, 0.25, 0.17)
DEFAULT_SCLERA = (0.86, 0.83, 0.80)


@dataclasses.dataclass(frozen=True)
class EyeConfig:
    """Settings of :func:`build_eyes` (module docstring).

    Attributes:
      radius: eyeball radius (mm).
      protrusion: front pole in front of the opening's centroid before the clearance push (mm).
      clearance: smallest distance of a head vertex near the eye to the sphere (mm).
      max_gaze_deg: largest angle between the eye's axis and the head's +z.
      iris_angle, pupil_angle: half-angles of the iris and the pupil (rad).
      socket_inset: the socket's rim lies this far behind the opening's rim, along -z (mm).
      n_lat, n_lon: sphere rings (pole to pole) and segments.
      texture_size: side of the eye texture.
    """

    radius: float = 12.0
    protrusion: float = 2.5
    clearance: float = 0.3
    max_gaze_deg: float = 20.0
    iris_angle: float = 0.51
    pupil_angle: float = 0.16
    socket_inset: float = 1.0
    n_lat: int = 24
    n_lon: int = 32
    texture_size: int = 256

    def __post_init__(self):
        if not (self.radius > 0 and self.clearance >= 0 and 0 < self.pupil_angle < self.iris_angle < np.pi / 2):
            raise ValueError(f"invalid EyeConfig: {self}")
        if self.n_lat < 3 or self.n_lon < 3 or self.texture_size < 16:
            raise ValueError(f"n_lat, n_lon >= 3 and texture_size >= 16 required, got {self}")


@dataclasses.dataclass(frozen=True)
class EyeColours:
    """Colours read from the photo's eyes.

    Attributes:
      iris: ``(3,) float32`` sRGB in [0, 1]; sclera: ``(3,) float32`` sRGB.
      pixels: eye pixels used (both eyes); sampled: False when the defaults were used.
      warning: why the defaults were used (None when sampled).
      sclera_sampled: False when too few near-neutral bright pixels were seen (narrow eyes, glasses):
        the sclera is then :data:`DEFAULT_SCLERA`.
    """

    iris: np.ndarray
    sclera: np.ndarray
    pixels: int
    sampled: bool
    warning: str | None = None
    sclera_sampled: bool = True


@dataclasses.dataclass(frozen=True)
class Eyes:
    """Both eyeballs (and their sockets) as one textured mesh, head frame, millimetres.

    Attributes:
      vertices: ``(E, 3) float32``; faces ``(G, 3) int32`` (outward, counter-clockwise);
      uvs: ``(T, 2) float32`` (OBJ convention, v up); uv_faces ``(G, 3) int32``;
      texture: ``(S, S, 3) uint8`` sRGB eye map; colours: the :class:`EyeColours` painted;
      centres: ``(2, 3) float32`` eyeball centres (subject's right, left); axes ``(2, 3)`` unit axes.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    texture: np.ndarray
    colours: EyeColours
    centres: np.ndarray
    axes: np.ndarray


def _eye_pixels(img, eye_landmarks, shrink: float):
    """Pixels (N, 3) uint8 inside the eye polygon shrunk toward its centroid by ``shrink``."""
    p = np.asarray(eye_landmarks, np.float64)
    c = p.mean(axis=0)
    poly = c + (p - c) * (1.0 - shrink) - 0.5
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 4).astype(np.int32)], 1, shift=2)
    return img[mask > 0]


def sample_eye_colours(image, landmarks, *, min_pixels: int = 12, max_sclera_chroma: float = 14.0) -> EyeColours:
    """Iris and sclera colours of the photo's eyes.

    Inside each eye's landmark polygon (iBUG 36-41, 42-47, shrunk by 15% to keep lashes out), pixels
    are ranked by CIELAB lightness: the iris is the median colour of the 10th-45th percentile (the
    darkest 10% are pupil, lashes and lid shadow), the sclera the median of the brightest 15% of the
    light (L* >= 50 and above the median) near-neutral pixels (CIELAB chroma < ``max_sclera_chroma``;
    skin and lids are not), or
    :data:`DEFAULT_SCLERA` when fewer than 5% of the pixels (at least 4) are near-neutral.

    Args:
      image: ``(H, W, 3) uint8`` RGB photo; landmarks: ``(68, 2)`` iBUG landmarks (pixels).
      min_pixels: fewer eye pixels than this (both eyes) -> the defaults, with a warning.

    Returns:
      :class:`EyeColours`.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {img.shape} {img.dtype}")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {lm.shape}")
    default = EyeColours(np.asarray(DEFAULT_IRIS, np.float32), np.asarray(DEFAULT_SCLERA, np.float32), 0, False)
    eyes = [lm[36:42], lm[42:48]]
    eyes = [e for e in eyes if np.isfinite(e).all()]
    if not eyes:
        return dataclasses.replace(default, warning="eye landmarks missing; default iris and sclera colours")
    px = np.concatenate([_eye_pixels(img, e, 0.15) for e in eyes])
    if len(px) < min_pixels:
        return dataclasses.replace(default, pixels=int(len(px)), warning=f"only {len(px)} eye pixels in the photo; "
                                   "default iris and sclera colours")
    lab = cv2.cvtColor(px.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab)[:, 0].astype(np.float64)  # 8-bit: a, b + 128
    light = lab[:, 0]
    order = np.argsort(light, kind="stable")
    n = len(order)
    iris = px[order[int(0.10 * n):max(int(0.45 * n), int(0.10 * n) + 1)]]
    bright = light[order] >= max(np.median(light), 128.0)  # 8-bit L* 128 = L* 50
    neutral = order[bright & (np.hypot(lab[order, 1] - 128.0, lab[order, 2] - 128.0) < max_sclera_chroma)]
    if len(neutral) >= max(4, int(0.05 * n)):
        sclera = np.median(px[neutral[int(0.85 * len(neutral)):]], axis=0).astype(np.float32) / 255.0
        sclera_ok = True
    else:
        sclera, sclera_ok = np.asarray(DEFAULT_SCLERA, np.float32), False
    return EyeColours(np.median(iris, axis=0).astype(np.float32) / 255.0, sclera, int(n), True,
                      sclera_sampled=sclera_ok)


def eye_texture(colours: EyeColours, config: EyeConfig = EyeConfig()) -> np.ndarray:
    """``(S, S, 3) uint8`` sRGB eye map in the equal-area layout of the module docstring."""
    s = int(config.texture_size)
    y, x = (np.mgrid[0:s, 0:s] + 0.5) / s - 0.5
    r = np.minimum(np.hypot(x, y) / 0.5, 1.0)  # = sin(theta / 2)
    theta = 2.0 * np.arcsin(r)
    phi = np.arctan2(y, x)
    iris = np.asarray(colours.iris, np.float64)
    sclera = np.asarray(colours.sclera, np.float64)
    t = theta / config.iris_angle  # 0 at the pupil centre, 1 at the limbus
    streaks = 1.0 + 0.10 * np.sin(37.0 * phi) * np.cos(11.0 * phi + 3.0 * t) * (t < 1)
    shade = np.clip(1.0 - 0.45 * np.clip((t - 0.75) / 0.25, 0.0, 1.0) ** 2, 0.0, 1.0)  # limbal ring
    col = iris[None, None] * (streaks * shade)[..., None]
    w_iris = np.clip((config.iris_angle - theta) / 0.03 + 0.5, 0.0, 1.0)[..., None]
    out = sclera[None, None] * (1.0 - w_iris) + col * w_iris
    w_pupil = np.clip((config.pupil_angle - theta) / 0.02 + 0.5, 0.0, 1.0)[..., None]
    out = out * (1.0 - w_pupil) + 0.02 * w_pupil
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _basis(axis):
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    helper = np.array([0.0, 1.0, 0.0]) if abs(a[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, a)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(a, e1), a


def _sphere(centre, axis, radius, n_lat, n_lon):
    """Lat-long sphere about ``axis``: vertices, faces, uvs, uv_faces (poles: one vertex each; the
    back pole gets one uv per face)."""
    e1, e2, a = _basis(axis)
    th = np.pi * np.arange(1, n_lat) / n_lat
    ph = 2.0 * np.pi * np.arange(n_lon) / n_lon
    T, P = np.meshgrid(th, ph, indexing="ij")
    d = (np.sin(T)[..., None] * (np.cos(P)[..., None] * e1 + np.sin(P)[..., None] * e2)
         + np.cos(T)[..., None] * a).reshape(-1, 3)
    dirs = np.concatenate([a[None], d, -a[None]])
    verts = centre + radius * dirs
    r = 0.5 * np.sin(T / 2.0)
    ring_uv = np.stack([0.5 + r * np.cos(P), 0.5 + r * np.sin(P)], axis=-1).reshape(-1, 2)
    back = n_lon * (n_lat - 1) + 1
    mid = ph + np.pi / n_lon
    uvs = np.concatenate([[[0.5, 0.5]], ring_uv, np.stack([0.5 + 0.5 * np.cos(mid), 0.5 + 0.5 * np.sin(mid)], 1)])
    ring = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    faces, uvf = [], []
    for j in range(n_lon):
        faces.append((0, ring(0, j), ring(0, j + 1)))
        uvf.append(faces[-1])
        for i in range(n_lat - 2):
            q = (ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1))
            faces += [(q[0], q[1], q[2]), (q[0], q[2], q[3])]
            uvf += [faces[-2], faces[-1]]
        faces.append((ring(n_lat - 2, j), back, ring(n_lat - 2, j + 1)))
        uvf.append((ring(n_lat - 2, j), back + j, ring(n_lat - 2, j + 1)))
    faces, uvf = np.asarray(faces, np.int64), np.asarray(uvf, np.int64)
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = np.einsum("fk,fk->f", n, tri.mean(axis=1) - centre) < 0
    faces[flip] = faces[flip][:, ::-1]
    uvf[flip] = uvf[flip][:, ::-1]
    return verts, faces, uvs, uvf


def eyeball_mesh(vertices, model, gaze=None, config: EyeConfig = EyeConfig()):
    """Eyeball and socket geometry for a head shape.

    Args:
      vertices: ``(V, 3)`` head-frame positions (mm) of ``model``'s topology (the neutral fitted head).
      model: :class:`~digitaltwin_jax.model.HeadModel` (faces, landmark indices).
      gaze: ``(3,)`` head-frame point the eyes look at (e.g. the camera centre), or None (+z).
      config: :class:`EyeConfig`.

    Returns:
      ``(vertices (E, 3), faces (G, 3), uvs (T, 2), uv_faces (G, 3), centres (2, 3), axes (2, 3))``,
      float64 / int64; the eye map's pupil (uv 0.5, 0.5) colours the sockets.
    """
    v = np.asarray(vertices, np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise ValueError(f"vertices must be a finite (V, 3) array, got shape {v.shape}")
    op = find_openings(v, model.faces, model.landmark_indices)
    z = np.array([0.0, 0.0, 1.0])
    max_tilt = np.deg2rad(config.max_gaze_deg)
    parts, centres, axes = [], [], []
    count = 0
    for loop in (op.eye_right, op.eye_left):
        rim = v[loop]
        c0 = rim.mean(axis=0)
        centre = c0 - (config.radius - config.protrusion) * z
        near = v[np.linalg.norm(v - c0, axis=1) < 3.0 * config.radius]
        for _ in range(200):  # push back along -z until every nearby head vertex clears the sphere
            gap = np.linalg.norm(near - centre, axis=1).min() - config.radius
            if gap >= config.clearance:
                break
            centre = centre - (config.clearance - gap + 0.05) * z
        axis = z if gaze is None else np.asarray(gaze, np.float64) - centre
        axis = axis / max(np.linalg.norm(axis), 1e-12)
        tilt = np.arccos(np.clip(axis @ z, -1.0, 1.0))
        if tilt > max_tilt:  # rotate toward +z to the largest allowed angle
            perp = axis - (axis @ z) * z
            axis = np.cos(max_tilt) * z + np.sin(max_tilt) * perp / max(np.linalg.norm(perp), 1e-12)
        sv, sf, su, suf = _sphere(centre, axis, config.radius, config.n_lat, config.n_lon)
        # socket: rim moved into the head, fan to a point behind the eyeball (faces toward the eye)
        srim = rim - config.socket_inset * z
        apex = c0 - (2.0 * config.radius + 2.0) * z
        k = len(srim)
        cv = np.concatenate([srim, apex[None]])
        cf = np.stack([np.arange(k), np.roll(np.arange(k), -1), np.full(k, k)], axis=1)
        tri = cv[cf]
        nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        if np.einsum("fk,fk->", nrm, np.broadcast_to(z, nrm.shape)) < 0:  # make the cone's inside face +z
            cf = cf[:, ::-1]
        cu = np.full((1, 2), 0.5)
        cuf = np.zeros_like(cf)
        n_su = len(su)
        parts.append((np.concatenate([sv, cv]), np.concatenate([sf, cf + len(sv)]) + count,
                      np.concatenate([su, cu]), np.concatenate([suf, cuf + n_su])))
        count += len(sv) + len(cv)
        centres.append(centre)
        axes.append(axis)
    uv_off = 0
    verts, faces, uvs, uv_faces = [], [], [], []
    for pv, pf, pu, puf in parts:
        verts.append(pv)
        faces.append(pf)
        uvs.append(pu)
        uv_faces.append(puf + uv_off)
        uv_off += len(pu)
    return (np.concatenate(verts), np.concatenate(faces), np.concatenate(uvs), np.concatenate(uv_faces),
            np.asarray(centres), np.asarray(axes))


def build_eyes(image, landmarks, neutral_vertices, model, *, rotation=None, translation=None,
               config: EyeConfig = EyeConfig()) -> Eyes:
    """The avatar's eyes: :func:`eyeball_mesh` on the neutral fitted head, looking at the photo's
    camera (``rotation``, ``translation``: head -> camera, ``p_cam = R p + t``; None: along +z), with
    the photo's iris and sclera colours (:func:`sample_eye_colours`).

    Args:
      image: ``(H, W, 3) uint8`` photo; landmarks: ``(68, 2)`` its iBUG landmarks.
      neutral_vertices: ``(V, 3)`` head frame (mm); model: the head model.

    Returns:
      :class:`Eyes` (float32 / int32 arrays).
    """
    gaze = None
    if rotation is not None and translation is not None:
        R = np.asarray(rotation, np.float64)
        gaze = -R.T @ np.asarray(translation, np.float64)  # camera centre in the head frame
    v, f, uv, uvf, centres, axes = eyeball_mesh(neutral_vertices, model, gaze, config)
    colours = sample_eye_colours(image, landmarks)
    return Eyes(v.astype(np.float32), f.astype(np.int32), uv.astype(np.float32), uvf.astype(np.int32),
                eye_texture(colours, config), colours, centres.astype(np.float32), axes.astype(np.float32))


def preview_mesh(vertices, faces, uvs, uv_faces, texture, eyes: Eyes):
    """The head and its eyes as one mesh with one atlas, for a renderer that takes a single texture.

    Args:
      vertices ``(V, 3)``, faces ``(F, 3)``, uvs ``(T, 2)``, uv_faces ``(F, 3)``: the head;
      texture: ``(S, S, 3)`` float [0, 1] head map; eyes: :class:`Eyes` in the head's frame.

    Returns:
      ``(vertices (V+E, 3), faces (F+G, 3), uvs (T+T', 2), uv_faces (F+G, 3), atlas (S, S + s, 3) float32)``:
      the head map with the eye map (side ``s = min(S, eye map side)``) in a column on its right, top-aligned.
    """
    tex = np.asarray(texture, np.float32)
    S = tex.shape[0]
    eye = eyes.texture.astype(np.float32) / 255.0
    s = min(S, eye.shape[0])
    if s != eye.shape[0]:
        eye = cv2.resize(eye, (s, s), interpolation=cv2.INTER_AREA)
    atlas = np.zeros((S, S + s, 3), np.float32)
    atlas[:, :S] = tex
    atlas[:s, S:] = eye
    W = float(S + s)
    head_uv = np.asarray(uvs, np.float32) * np.array([S / W, 1.0], np.float32)
    e_uv = np.asarray(eyes.uvs, np.float32)
    eye_uv = np.stack([(S + e_uv[:, 0] * s) / W, 1.0 - (1.0 - e_uv[:, 1]) * s / S], axis=1)
    v = np.concatenate([np.asarray(vertices, np.float32), eyes.vertices])
    f = np.concatenate([np.asarray(faces), eyes.faces + len(vertices)])
    uvf = np.concatenate([np.asarray(uv_faces), eyes.uv_faces + len(uvs)])
    return v, f, np.concatenate([head_uv, eye_uv]).astype(np.float32), uvf, atlas
