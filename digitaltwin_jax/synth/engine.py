"""Render one synthetic face image from a :class:`~digitaltwin_jax.synth.scene.Scene` (paper section
3.2 "Synthetic Rendering"; the open stand-in for the paper's V-ray shader graph).

Pipeline (CPU, numpy; the z-buffer is the shared :func:`digitaltwin_jax.render.rasterize`):

1. the head (plus eye/mouth caps or eyeballs, :mod:`.eyes`) is posed into the camera frame and
   rasterised at ``supersample`` times the output resolution with back faces culled;
2. per covered pixel: perspective-correct position, normal, UV; albedo from the bank map (sRGB
   decoded to linear *before* bilinear filtering) and the generic specular map;
3. shading in linear RGB, per light ``i`` of the :class:`~.lighting.Lighting`:

   * diffuse ``albedo * E_i * vis_i * wrap(n . l_i)`` with a per-channel wrap
     ``max(0, (x + w_c) / (1 + w_c))``, ``w = (0.25, 0.12, 0.08)``, a cheap stand-in for skin's
     sub-surface scattering (light bleeds past the terminator, reddest);
   * specular: two normalised Blinn-Phong lobes (exponents 12 and 48) with Schlick Fresnel
     (``F0 = 0.028``, skin) scaled by the specular map and the scene's specular gain;
   * ``vis_i``: cast shadows of the two strongest shadow-casting lights from a shadow map
     (:mod:`digitaltwin_jax.render.shadow`, the same rasteriser seen from the light), with PCF whose
     radius follows the light's angular size (soft box vs sun); the lookup point is moved toward the
     light by ``8 (1 - n.l)^2`` mm so the wrapped terminator does not shadow itself while shadows
     cast by farther parts (nose, brows, jaw) remain;

   plus a hemispherical ambient term (sky from above, ground from below) and a shadowless
   camera-side fill along the viewing axis (both tinted 30 % toward the background's mean colour),
   times per-vertex ambient occlusion precomputed on the mean head;
4. auto exposure puts the median skin luminance at the preset's target unless that pushes the 95th
   percentile above 0.7 (high-contrast light: expose for the lit side), then a soft highlight
   shoulder; the image is box-filtered down to the output size and composited over the background;
5. camera imperfections: Gaussian blur, sensor noise, sRGB encoding, optional JPEG round trip;
6. eyes masked (default): pixels of the eye caps are set to ``eye_fill`` (sRGB) with their coverage
   as alpha, and returned as the eye mask.

Ground truth: the 68 landmarks are ``K (R X + t)`` of the shape's landmark vertices, in output pixel
coordinates with the origin at the image's top-left *corner* (pixel ``(i, j)``'s centre is
``(j + 0.5, i + 0.5)``; subtract 0.5 for index coordinates such as dlib's).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from digitaltwin_jax.render.colorspace import linear_to_srgb, srgb_to_linear_lut, to_uint8
from digitaltwin_jax.render.rasterize import rasterize
from digitaltwin_jax.render.shading import vertex_normals
from digitaltwin_jax.render.shadow import shadow_map, shadow_visibility
from digitaltwin_jax.synth import eyes as eyes_mod
from digitaltwin_jax.synth.albedo import AlbedoBank
from digitaltwin_jax.synth.backgrounds import BACKGROUND_KINDS, PhotoBackgrounds, procedural_background
from digitaltwin_jax.synth.lighting import light_direction, light_rgb

__all__ = ["RenderConfig", "RenderResult", "SceneRenderer", "project_landmarks"]

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_WRAP = np.array([0.25, 0.12, 0.08], np.float32)
_MOUTH_ALBEDO = np.array([0.06, 0.015, 0.012], np.float32)
_SOCKET_ALBEDO = np.array([0.03, 0.01, 0.01], np.float32)


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """Renderer settings.

    Attributes:
      supersample: rasterise at this multiple of the output size (``supersample**2`` coverage
        samples per output pixel: anti-aliased silhouettes and eye masks).
      shading: ``"pixel"``: shade one sample per output pixel (its first covered sub-sample) and
        weight it by the pixel's coverage (multisample anti-aliasing; 4x cheaper at 2x) or
        ``"sample"``: shade every sub-sample and box-filter (full supersampling).
      eyes: ``"masked"`` (paper) or ``"eyeballs"`` (:mod:`.eyes`).
      eye_fill: sRGB 0-255 colour painted over the eye openings in masked mode.
      shadow_map_size: texels per side of each shadow map.
      max_shadow_lights: shadow-mapped lights per image (the strongest shadow casters).
      ao_directions: directions for the ambient-occlusion precomputation.
    """

    supersample: int = 2
    shading: str = "pixel"
    eyes: str = "masked"
    eye_fill: tuple[int, int, int] = (0, 0, 0)
    shadow_map_size: int = 256
    max_shadow_lights: int = 2
    ao_directions: int = 64

    def __post_init__(self):
        if self.shading not in ("pixel", "sample"):
            raise ValueError(f"shading must be 'pixel' or 'sample', got {self.shading!r}")
        if self.eyes not in ("masked", "eyeballs"):
            raise ValueError(f"eyes must be 'masked' or 'eyeballs', got {self.eyes!r}")
        if int(self.supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {self.supersample}")


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """One rendered image.

    Attributes:
      image: ``(H, W, 3) uint8`` sRGB.
      face_alpha: ``(H, W) float32`` head coverage in [0, 1] (eye caps included).
      eye_alpha: ``(H, W) float32`` coverage of the masked eye openings (zeros with eyeballs: then
        the coverage of the eyeballs).
      landmarks: ``(68, 2) float32`` projected ground-truth landmarks (corner-origin pixels).
      background_kind: index into :data:`~.backgrounds.BACKGROUND_KINDS`.
    """

    image: np.ndarray
    face_alpha: np.ndarray
    eye_alpha: np.ndarray
    landmarks: np.ndarray
    background_kind: int


def project_landmarks(vertices, landmark_indices, rotation, translation, K) -> np.ndarray:
    """``(68, 2) float32`` pixels ``K (R X + t)`` of the landmark vertices (corner-origin)."""
    X = np.asarray(vertices, np.float64)[np.asarray(landmark_indices)]
    Xc = X @ np.asarray(rotation, np.float64).T + np.asarray(translation, np.float64)
    uvw = Xc @ np.asarray(K, np.float64).T
    return (uvw[:, :2] / uvw[:, 2:3]).astype(np.float32)


def _fibonacci_sphere(n):
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    r = np.sqrt(1 - z * z)
    a = k * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.cos(a), r * np.sin(a), z], axis=1)


class SceneRenderer:
    """Holds the per-process assets (model arrays, albedo bank, openings, ambient occlusion) and
    renders scenes.

    Args:
      model: the :class:`~digitaltwin_jax.model.head_model.HeadModel`.
      bank: :class:`~.albedo.AlbedoBank` in the model's UV layout.
      config: :class:`RenderConfig`.
      photos: optional :class:`~.backgrounds.PhotoBackgrounds`.
      ambient_occlusion: optional ``(V,) float32`` precomputed :meth:`ambient_occlusion` (computed
        here when None).
    """

    def __init__(self, model, bank: AlbedoBank, config: RenderConfig = RenderConfig(), photos=None,
                 ambient_occlusion=None):
        self.model = model
        self.bank = bank
        self.config = config
        self.photos = photos
        self.faces = np.asarray(model.faces, np.int64)
        self.uvs = np.asarray(model.uvs, np.float32)
        self.uv_faces = np.asarray(model.uv_faces, np.int64)
        self.landmark_indices = np.asarray(model.landmark_indices)
        self.openings = eyes_mod.find_openings(model.vertices, model.faces, model.landmark_indices)
        self.lut = srgb_to_linear_lut()
        if ambient_occlusion is None:
            ambient_occlusion = self.ambient_occlusion()
        ao = np.asarray(ambient_occlusion, np.float32)
        if ao.shape != (model.vertices.shape[0],):
            raise ValueError(f"ambient_occlusion must have shape ({model.vertices.shape[0]},), got {ao.shape}")
        self.ao = ao

    # -- precomputation -------------------------------------------------------------------------
    def _assemble(self, v_head):
        ex = eyes_mod.opening_geometry(v_head, self.openings, eyes=self.config.eyes)
        v = np.concatenate([v_head, ex.vertices]).astype(np.float64)
        f = np.concatenate([self.faces, ex.faces.astype(np.int64)])
        mat = np.concatenate([np.zeros(len(self.faces), np.int8), ex.material])
        return v, f, mat, ex

    def ambient_occlusion(self) -> np.ndarray:
        """``(V,) float32`` per-vertex ambient occlusion of the mean head (cosine-weighted
        visibility over the normal's hemisphere, from shadow maps in ``ao_directions`` directions;
        the eye and mouth caps occlude too)."""
        v_head = np.asarray(self.model.vertices, np.float64)
        v, f, mat, _ = self._assemble(v_head)
        n = vertex_normals(v, f).astype(np.float64)
        num = np.zeros(len(v))
        den = np.zeros(len(v))
        for d in _fibonacci_sphere(int(self.config.ao_directions)):
            w = np.maximum(n @ d, 0.0)
            sel = w > 0
            if not sel.any():
                continue
            sm = shadow_map(v, f, d, size=192)
            vis = shadow_visibility(sm, v[sel], bias=1.5, normals=n[sel], normal_offset=1.0)
            num[sel] += w[sel] * vis
            den[sel] += w[sel]
        ao = np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)
        return ao[: len(v_head)].astype(np.float32)

    # -- rendering ------------------------------------------------------------------------------
    def render(self, scene) -> RenderResult:
        """Render ``scene`` (:class:`~.scene.Scene`); see the module docstring."""
        cfg = self.config
        size = int(round(2 * float(scene.K[0, 2])))
        ss = int(cfg.supersample)
        H = W = size * ss
        R = np.asarray(scene.rotation, np.float64)
        t = np.asarray(scene.translation, np.float64)
        v_head = np.asarray(scene.vertices, np.float64)
        if not np.isfinite(v_head).all():
            raise ValueError(f"scene {scene.index}: vertices contain non-finite values")
        vh, faces, mat, ex = self._assemble(v_head)
        vc = vh @ R.T + t  # camera frame
        if (vc[:, 2] <= 1.0).any():
            raise ValueError(f"scene {scene.index}: the head crosses the camera plane")
        Ks = np.asarray(scene.K, np.float64).copy()
        Ks[:2] *= ss
        uvw = vc @ Ks.T
        pts = np.concatenate([uvw[:, :2] / uvw[:, 2:3], vc[:, 2:3]], axis=1)
        frags = rasterize(pts, faces, H, W, perspective=True, cull_backfaces=True)

        # sub-samples (size, size, ss*ss) of every output pixel
        fid_ss = frags.face_id.reshape(size, ss, size, ss).transpose(0, 2, 1, 3).reshape(size, size, ss * ss)
        cov_ss = fid_ss >= 0
        alpha = cov_ss.mean(axis=2, dtype=np.float32)
        eye_mat = eyes_mod.EYEBALL if cfg.eyes == "eyeballs" else eyes_mod.EYE_MASK
        eye_a = (cov_ss & (mat[np.maximum(fid_ss, 0)] == eye_mat)).mean(axis=2, dtype=np.float32)
        if cfg.shading == "sample":
            sub = np.flatnonzero(cov_ss.ravel())  # every covered sub-sample
        else:  # one shading sample per covered output pixel: its first covered sub-sample
            out_pix = np.flatnonzero(alpha.ravel() > 0)
            k = np.argmax(cov_ss.reshape(-1, ss * ss)[out_pix], axis=1)
            sub = out_pix * (ss * ss) + k
        # flat index of those sub-samples in the (H, W) buffers
        op, kk = np.divmod(sub, ss * ss)
        oy, ox = np.divmod(op, size)
        ky, kx = np.divmod(kk, ss)
        flat = (oy * ss + ky) * W + (ox * ss + kx)
        fid = frags.face_id.ravel()[flat]
        bary = frags.bary.reshape(-1, 3)[flat]
        m = mat[fid]
        tri = faces[fid]

        # interpolate position, normal, ambient occlusion (and eyeball directions) in one gather
        normals_all = vertex_normals(vc, faces)
        ao = np.concatenate([self.ao, np.full(len(ex.vertices), 0.5, np.float32)])
        cols = [vc.astype(np.float32), normals_all, ao[:, None]]
        if len(ex.eye_dirs) and cfg.eyes == "eyeballs":
            cols.append(np.concatenate([np.zeros((len(v_head), 3), np.float32), ex.eye_dirs]))
        attr = np.concatenate(cols, axis=1)
        g = attr[tri]
        X = g[:, 0] * bary[:, 0:1] + g[:, 1] * bary[:, 1:2] + g[:, 2] * bary[:, 2:3]
        P, N, A = X[:, 0:3], X[:, 3:6], X[:, 6]
        N /= np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
        V = -P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
        nv = np.einsum("nc,nc->n", N, V)
        flip = nv < 0  # silhouette pixels whose interpolated normal turns away: bend toward the eye
        if flip.any():
            N[flip] -= (nv[flip] - 1e-3)[:, None] * V[flip]
            N[flip] /= np.maximum(np.linalg.norm(N[flip], axis=1, keepdims=True), 1e-12)

        # albedo + specular strength
        n_px = len(flat)
        albedo = np.zeros((n_px, 3), np.float32)
        spec_w = np.zeros(n_px, np.float32)
        skin = m == eyes_mod.SKIN
        if skin.any():
            uv_tri = self.uv_faces[fid[skin]]
            b = bary[skin]
            uv = (self.uvs[uv_tri[:, 0]] * b[:, 0:1] + self.uvs[uv_tri[:, 1]] * b[:, 1:2]
                  + self.uvs[uv_tri[:, 2]] * b[:, 2:3])
            albedo[skin], spec_w[skin] = self._sample_albedo(scene.albedo, uv)
        albedo[m == eyes_mod.MOUTH] = _MOUTH_ALBEDO
        albedo[m == eyes_mod.SOCKET] = _SOCKET_ALBEDO
        ball = m == eyes_mod.EYEBALL
        if ball.any():
            albedo[ball], spec_w[ball] = _eyeball_albedo(X[ball, 7:10], scene.iris_rgb)

        # background (needed for the ambient tint)
        bg, bg_kind = self._background(scene, size)
        bg_mean = bg.reshape(-1, 3).mean(axis=0)
        bg_tint = (0.7 + 0.3 * bg_mean / max(float(bg_mean @ _LUMA), 1e-3)).astype(np.float32)

        # lighting
        lt = scene.lighting
        nu = -N[:, 1]  # N . up, up = -y in the camera frame
        sky = light_rgb(lt.sky_kelvin, lt.sky) * bg_tint
        ground = light_rgb(lt.ground_kelvin, lt.ground) * bg_tint
        w_sky = (0.5 + 0.5 * nu) * A
        w_gnd = (0.5 - 0.5 * nu) * A
        diffuse = w_sky[:, None] * sky + w_gnd[:, None] * ground
        if lt.fill > 0:  # camera-side fill: shadowless, along the viewing axis (-z), key's colour mix
            key_sum = sum(li.intensity for li in lt.lights)
            fill_rgb = light_rgb(5500.0, lt.fill * key_sum) * bg_tint
            nf = np.maximum((-N[:, 2:3] + _WRAP) * (1.0 / (1.0 + _WRAP)), 0.0)
            diffuse += (nf * A[:, None]) * fill_rgb
        spec = np.zeros((n_px, 3), np.float32)
        order = np.argsort([-li.intensity for li in lt.lights])
        shadowed = [int(i) for i in order if lt.lights[i].shadows][: cfg.max_shadow_lights]
        spec_scale = spec_w * np.float32(scene.specular_gain)
        for i, li in enumerate(lt.lights):
            ldir = light_direction(li.azimuth, li.elevation).astype(np.float32)
            E = light_rgb(li.kelvin, li.intensity)
            ndl = N @ ldir
            lit = ndl > -_WRAP[0]
            if not lit.any():
                continue
            vis = np.ones(int(lit.sum()), np.float32)
            ndl_l = ndl[lit]
            if i in shadowed:
                sm = shadow_map(vc, faces, ldir, size=cfg.shadow_map_size, cull_backfaces=True)
                radius = float(np.clip(np.tan(np.deg2rad(li.softness)) * 40.0 * sm.scale, 0.0, 10.0))
                # Look up from a point moved toward the light by up to 8 mm at grazing angles: it
                # leaves the local surface (no self-shadowing line at the wrapped terminator) but
                # stays inside shadows cast by farther occluders (nose, jaw, brows).
                toward = (8.0 * (1.0 - np.clip(ndl_l, 0.0, 1.0)) ** 2)[:, None] * ldir
                vis = shadow_visibility(sm, P[lit] + toward, bias=1.0, radius=radius if radius > 0.75 else 0.0,
                                        taps=10, normals=N[lit], normal_offset=1.0, slope_bias=1.5)
            wrap = np.maximum((ndl_l[:, None] + _WRAP) * (1.0 / (1.0 + _WRAP)), 0.0)
            diffuse[lit] += (vis[:, None] * wrap) * E
            front = ndl_l > 0
            if front.any():
                idx = np.flatnonzero(lit)[front]
                Hv = V[idx] + ldir
                Hv /= np.maximum(np.linalg.norm(Hv, axis=1, keepdims=True), 1e-12)
                ndh = np.maximum(np.einsum("nc,nc->n", N[idx], Hv), 0.0)
                vdh = np.maximum(np.einsum("nc,nc->n", V[idx], Hv), 0.0)
                fres = 0.028 + 0.25 * (1.0 - vdh) ** 5
                n12 = ndh**12
                lobes = 0.3 * n12 + 3.0 * (n12 * n12) ** 2  # w (s + 8) / 8 n.h^s: s = 12, w = 0.12; s = 48, w = 0.43
                sv = fres * lobes * ndl_l[front] * vis[front] * spec_scale[idx]
                spec[idx] += sv[:, None] * E
        color = albedo * diffuse + spec

        # auto exposure on the skin, soft shoulder
        lum = color[skin] @ _LUMA if skin.any() else color @ _LUMA
        med, p95 = (float(v) for v in np.percentile(lum, [50, 95])) if lum.size else (1.0, 1.0)
        # expose the median skin at the target, but keep the lit side out of the shoulder
        gain = float(np.clip(min(lt.exposure_target / max(med, 1e-6), 0.7 / max(p95, 1e-6)), 0.05, 50.0))
        color = _shoulder(color * np.float32(gain))

        # resolve to the output size
        if cfg.shading == "sample":
            acc = np.zeros((size * size * ss * ss, 3), np.float32)
            acc[sub] = color
            img = acc.reshape(size, size, ss * ss, 3).sum(axis=2) / np.float32(ss * ss)
        else:
            img = np.zeros((size * size, 3), np.float32)
            img[op] = color * alpha.ravel()[op][:, None]
            img = img.reshape(size, size, 3)
        img = img + (1.0 - alpha)[..., None] * bg

        # camera imperfections
        if scene.blur_sigma > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), float(scene.blur_sigma), borderType=cv2.BORDER_REFLECT)
        srgb = linear_to_srgb(img)
        if scene.noise_sigma > 0:
            nrng = np.random.default_rng(scene.seed ^ 0x5EED)
            srgb += nrng.normal(0.0, scene.noise_sigma, srgb.shape).astype(np.float32)
        out = to_uint8(srgb)
        if scene.jpeg_quality > 0:
            ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(scene.jpeg_quality)])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        if cfg.eyes == "masked":
            fill = np.asarray(cfg.eye_fill, np.float32)
            a = eye_a[..., None]
            out = np.clip(np.rint(out * (1.0 - a) + fill * a), 0, 255).astype(np.uint8)
        lms = project_landmarks(v_head, self.landmark_indices, R, t, scene.K)
        return RenderResult(np.ascontiguousarray(out), alpha, eye_a, lms, bg_kind)

    def _sample_albedo(self, index, uv):
        """Bilinear lookup (linear light) of bank map ``index`` and the specular map at OBJ UVs."""
        tex = self.bank.maps[int(index)]
        h, w = tex.shape[:2]
        x = np.clip(uv[:, 0] * w - 0.5, 0.0, w - 1.001)
        y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0.0, h - 1.001)
        x0 = x.astype(np.int32)
        y0 = y.astype(np.int32)
        fx = (x - x0)[:, None]
        fy = (y - y0)[:, None]
        lut = self.lut
        c00 = lut[tex[y0, x0]]
        c01 = lut[tex[y0, x0 + 1]]
        c10 = lut[tex[y0 + 1, x0]]
        c11 = lut[tex[y0 + 1, x0 + 1]]
        top = c00 + (c01 - c00) * fx
        bot = c10 + (c11 - c10) * fx
        alb = top + (bot - top) * fy
        sm = self.bank.specular
        sh, sw = sm.shape
        sx = np.clip((uv[:, 0] * sw).astype(np.int32), 0, sw - 1)
        sy = np.clip(((1.0 - uv[:, 1]) * sh).astype(np.int32), 0, sh - 1)
        return alb.astype(np.float32), sm[sy, sx].astype(np.float32)

    def _background(self, scene, size):
        kind = BACKGROUND_KINDS[scene.background_kind]
        rng = np.random.default_rng(scene.background_seed)
        if kind == "photo":
            if self.photos is None:
                raise ValueError(f"scene {scene.index} asks for a photo background but no photos were given")
            return self.photos.sample(rng, size, size), scene.background_kind
        img, _ = procedural_background(rng, size, size, kind)
        return img, scene.background_kind


def _shoulder(x, knee: float = 0.8):
    """Identity below ``knee``, then an exponential roll-off toward 1 (C1-continuous)."""
    span = 1.0 - knee
    over = np.maximum(x - knee, 0.0)
    return np.where(x > knee, knee + span * (1.0 - np.exp(-over / span)), x).astype(np.float32)


def _eyeball_albedo(dirs, iris_rgb):
    """Sclera / iris / pupil colours from unit directions about the eyeball's +z axis."""
    d = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    ang = np.arccos(np.clip(d[:, 2], -1, 1))
    sclera = np.array([0.55, 0.5, 0.46], np.float32)
    iris = np.asarray(iris_rgb, np.float32)
    t_iris = np.clip((0.52 - ang) / 0.04, 0, 1)[:, None]
    t_pupil = np.clip((0.2 - ang) / 0.03, 0, 1)[:, None]
    alb = sclera * (1 - t_iris) + iris * t_iris
    alb = alb * (1 - t_pupil) + 0.01 * t_pupil
    return alb.astype(np.float32), np.full(len(d), 3.0, np.float32)
