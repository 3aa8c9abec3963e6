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
4. auto exposure: the skin's median irradiance times ``0.3^0.7 * albedo^0.3`` (a mostly fixed
   reference albedo, so darker skin stays darker, only partly compensated as by a camera's
   face-priority metering) is put at the preset's target, unless that pushes the 95th percentile
   of the skin above 0.7 (high-contrast light: expose for the lit side); then a soft highlight
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

from digitaltwin_jax.render.colorspace import linear_to_srgb8, srgb_to_linear_lut
from digitaltwin_jax.render.rasterize import rasterize
from digitaltwin_jax.render.shading import vertex_normals
from digitaltwin_jax.render.shadow import shadow_map, shadow_visibility
from digitaltwin_jax.synth import eyes as eyes_mod
from digitaltwin_jax.synth.albedo import AlbedoBank
from digitaltwin_jax.synth.backgrounds import BACKGROUND_KINDS, procedural_background
from digitaltwin_jax.synth.lighting import light_direction, light_rgb

__all__ = ["RenderConfig", "RenderResult", "SceneRenderer", "project_landmarks", "sensor_effects"]

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_REF_ALBEDO = 0.3  # linear albedo of a "typical" face for metering
_WRAP = np.array([0.25, 0.12, 0.08], np.float32)
_MOUTH_ALBEDO = np.array([0.06, 0.015, 0.012], np.float32)
_SOCKET_ALBEDO = np.array([0.03, 0.01, 0.01], np.float32)


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """Renderer settings.

    Attributes:
      supersample: rasterise at this multiple of the output size (``supersample**2`` coverage
        samples per output pixel: anti-aliased silhouettes and eye masks).
      shading: ``"sample"`` (default): shade every sub-sample and box-filter (full supersampling);
        ``"pixel"``: shade one sample per output pixel (its first covered sub-sample) weighted by
        the pixel's coverage (multisample anti-aliasing: silhouettes and masks keep all sub-samples,
        about 2x cheaper overall).
      eyes: ``"masked"`` (paper) or ``"eyeballs"`` (:mod:`.eyes`).
      eye_fill: sRGB 0-255 colour painted over the eye openings in masked mode.
      shadow_map_size: texels per side of each shadow map.
      max_shadow_lights: shadow-mapped lights per image (the strongest shadow casters).
      ao_directions: directions for the ambient-occlusion precomputation.
    """

    supersample: int = 2
    shading: str = "sample"
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
        self._lin_cache: dict = {}
        # standard normals for sensor noise; each image reads a window at a seed-dependent offset
        self._noise_table = np.random.default_rng(0x5EED).standard_normal(1 << 21, dtype=np.float32)
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

        # position from the z-buffer depth (exact: p = z K^-1 [x, y, 1] at the sub-sample centre)
        z = frags.depth.ravel()[flat]
        fy, fx = np.divmod(flat, W)
        P = np.empty((len(flat), 3), np.float32)
        P[:, 0] = ((fx + 0.5) - Ks[0, 2]) / Ks[0, 0] * z
        P[:, 1] = ((fy + 0.5) - Ks[1, 2]) / Ks[1, 1] * z
        P[:, 2] = z
        # interpolate normal, ambient occlusion (and eyeball directions) in one gather
        normals_all = vertex_normals(vc, faces)
        ao = np.concatenate([self.ao, np.full(len(ex.vertices), 0.5, np.float32)])
        cols = [normals_all, ao[:, None]]
        if len(ex.eye_dirs) and cfg.eyes == "eyeballs":
            cols.append(np.concatenate([np.zeros((len(v_head), 3), np.float32), ex.eye_dirs]))
        attr = np.concatenate(cols, axis=1)
        g = attr[tri]
        X = g[:, 0] * bary[:, 0:1] + g[:, 1] * bary[:, 1:2] + g[:, 2] * bary[:, 2:3]
        N, A = X[:, 0:3], X[:, 3]
        N /= np.sqrt(np.maximum(np.einsum("nc,nc->n", N, N), 1e-24))[:, None]
        V = -P / np.sqrt(np.maximum(np.einsum("nc,nc->n", P, P), 1e-24))[:, None]
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
            albedo[ball], spec_w[ball] = _eyeball_albedo(X[ball, 4:7], scene.iris_rgb)

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
        inv_wrap = (1.0 / (1.0 + _WRAP)).astype(np.float32)
        for i, li in enumerate(lt.lights):
            ldir = light_direction(li.azimuth, li.elevation).astype(np.float32)
            E = light_rgb(li.kelvin, li.intensity)
            ndl = N @ ldir
            if i in shadowed:
                lit = np.flatnonzero(ndl > -_WRAP[0])
                vis = np.zeros(n_px, np.float32)
                if lit.size:
                    sm = shadow_map(vc, faces, ldir, size=cfg.shadow_map_size, cull_backfaces=True)
                    radius = float(np.clip(np.tan(np.deg2rad(li.softness)) * 40.0 * sm.scale, 0.0, 10.0))
                    # Look up from a point moved toward the light by up to 8 mm at grazing angles: it
                    # leaves the local surface (no self-shadowing line at the wrapped terminator) but
                    # stays inside shadows cast by farther occluders (nose, jaw, brows).
                    nl = ndl[lit]
                    toward = (8.0 * (1.0 - np.clip(nl, 0.0, 1.0)) ** 2)[:, None] * ldir
                    vis[lit] = shadow_visibility(
                        sm, P[lit] + toward, bias=1.0, radius=radius if radius > 0.75 else 0.0,
                        taps=10 if cfg.shading == "pixel" else 5,  # sub-samples average 4 rotated disks
                        normals=N[lit], normal_offset=1.0, slope_bias=1.5)
                Ev = vis[:, None] * E
            else:
                vis = None
                Ev = E
            diffuse += np.maximum((ndl[:, None] + _WRAP) * inv_wrap, 0.0) * Ev
            # specular: normalised Blinn-Phong lobes with Schlick Fresnel, where the light is in front
            Hv = V + ldir
            hn = np.einsum("nc,nc->n", Hv, Hv)
            inv = 1.0 / np.sqrt(np.maximum(hn, 1e-12))
            ndh = np.maximum(np.einsum("nc,nc->n", N, Hv) * inv, 0.0)
            vdh = np.clip(np.einsum("nc,nc->n", V, Hv) * inv, 0.0, 1.0)
            m5 = 1.0 - vdh
            m2 = m5 * m5
            fres = 0.028 + 0.25 * (m2 * m2 * m5)
            n2 = ndh * ndh
            n4 = n2 * n2
            n12 = n4 * n4 * n4
            n48 = n12 * n12
            n48 *= n48
            lobes = 0.3 * n12 + 3.0 * n48  # w (s + 8) / 8 n.h^s: s = 12, w = 0.12; s = 48, w = 0.43
            sv = fres * lobes * np.maximum(ndl, 0.0) * spec_scale
            if vis is not None:
                sv *= vis
            spec += sv[:, None] * E
        color = albedo * diffuse + spec

        # auto exposure on the skin, soft shoulder
        sel = skin if skin.any() else slice(None)
        lum = color[sel] @ _LUMA
        irr = float(np.median(diffuse[sel] @ _LUMA)) if lum.size else 1.0
        alb = float(np.median(albedo[sel] @ _LUMA)) if lum.size else _REF_ALBEDO
        p95 = float(np.percentile(lum, 95)) if lum.size else 1.0
        # metering: the skin's median irradiance seen through a mostly fixed reference albedo (dark
        # skin stays darker than light skin, as with a camera's face-priority auto exposure), then
        # keep the lit side out of the shoulder
        metered = irr * _REF_ALBEDO ** 0.7 * max(alb, 1e-4) ** 0.3
        gain = float(np.clip(min(lt.exposure_target / max(metered, 1e-6), 0.7 / max(p95, 1e-6)), 0.05, 50.0))
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
        out = linear_to_srgb8(img)
        out = sensor_effects(out, scene.noise_sigma, scene.jpeg_quality, scene.seed, self._noise_table)
        if cfg.eyes == "masked":
            fill = np.asarray(cfg.eye_fill, np.float32)
            a = eye_a[..., None]
            out = np.clip(np.rint(out * (1.0 - a) + fill * a), 0, 255).astype(np.uint8)
        lms = project_landmarks(v_head, self.landmark_indices, R, t, scene.K)
        return RenderResult(np.ascontiguousarray(out), alpha, eye_a, lms, bg_kind)

    def _linear_map(self, index):
        """Bank map ``index`` decoded to linear float32 (a few recently used maps are kept)."""
        cache = self._lin_cache
        if index not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[index] = self.lut[self.bank.maps[int(index)]]
        return cache[index]

    def _sample_albedo(self, index, uv):
        """Bilinear lookup (in linear light) of bank map ``index`` and of the specular map at OBJ UVs
        ``(N, 2)``; returns ``(N, 3)`` albedo and ``(N,)`` specular strength, float32."""
        tex = self._linear_map(int(index))
        h, w = tex.shape[:2]
        n = uv.shape[0]
        cols = 1024
        rows = -(-n // cols)
        mx = np.zeros(rows * cols, np.float32)
        my = np.zeros(rows * cols, np.float32)
        mx[:n] = uv[:, 0] * w - 0.5  # texel centres at integer + 0.5 (shading.uv_to_pixel)
        my[:n] = (1.0 - uv[:, 1]) * h - 0.5
        mx = mx.reshape(rows, cols)
        my = my.reshape(rows, cols)
        alb = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:n]
        sm = self.bank.specular
        if sm.shape != (h, w):
            mx *= sm.shape[1] / w
            my *= sm.shape[0] / h
        spec = cv2.remap(sm, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1)[:n]
        return alb, spec

    def _background(self, scene, size):
        kind = BACKGROUND_KINDS[scene.background_kind]
        rng = np.random.default_rng(scene.background_seed)
        if kind == "photo":
            if self.photos is None:
                raise ValueError(f"scene {scene.index} asks for a photo background but no photos were given")
            return self.photos.sample(rng, size, size), scene.background_kind
        img, _ = procedural_background(rng, size, size, kind, resolution_scale=0.5)
        return img, scene.background_kind


def sensor_effects(image, noise_sigma: float, jpeg_quality: int, seed: int, noise_table) -> np.ndarray:
    """``(H, W, 3) uint8`` after the camera's sensor noise and JPEG, the last imperfections of a render.

    Args:
      image: ``(H, W, 3) uint8`` sRGB.
      noise_sigma: Gaussian noise in the 8-bit sRGB domain, as a fraction of 255 (0: none).
      jpeg_quality: JPEG round trip at this quality (0: none).
      seed: picks the noise: a window of ``noise_table`` at offset ``seed``, or, for images larger
        than the table, a fresh draw seeded with it.
      noise_table: ``(T,) float32`` standard normal samples (:class:`SceneRenderer` keeps one).
    """
    out = image
    if noise_sigma > 0:
        z = noise_table
        if out.size < z.size:
            off = int(seed % (z.size - out.size))
            z = z[off:off + out.size].reshape(out.shape)
        else:
            z = np.random.default_rng(seed).standard_normal(out.shape, dtype=np.float32)
        noisy = out.astype(np.float32) + np.float32(255.0 * noise_sigma) * z
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


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
