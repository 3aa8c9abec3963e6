"""Texture pipeline benchmark (paper section 3.5): projection to UV at 2048, Poisson blending at 1024
and 2048 against OpenCV's ``cv2.seamlessClone`` on the same input, and the whole texture stage.

Poisson input (same for both solvers): source = ``examples/astronaut.png`` (a face photo) resized to
the map size, target = a smooth skin-coloured "bank" texture with fine noise, blend region = an
ellipse around the face (crossing hair, suit and background, a hard case for the boundary).
``cv2.seamlessClone(NORMAL_CLONE)`` gets the uint8 versions and the mask's bounding-box centre.
Exactness is measured against our multigrid solver run to a relative residual of 1e-6 (8-bit
levels, inside the mask).  Note: OpenCV does not solve the same discrete problem -- it solves over
the mask's bounding rectangle with the destination gradients outside the mask and changes texels
outside the mask; the notes give its mean difference to the exact Perez solution and its largest
change outside the mask.

Projection: the ICT low head (if the asset exists, else a UV sphere) rendered at 800 x 600 with a
known texture, projected back into a 2048 map; baseline: ``cv2.remap`` of the photo with the same
texel-to-pixel maps (bare sampling: no visibility, no confidence, no UV rasterisation).

Times: median wall-clock ms (min wall and process-CPU in the notes, with the load average: the
machine is shared; OpenCV may use both cores).

Fidelity (issue 19, :mod:`digitaltwin_jax.texture.metrics`; :func:`fidelity` runs them alone):

* re-render: ``reconstruct`` on each of :data:`PHOTOS` (default config), the texture rebuilt on
  that fit (``texture_config``), then the head drawn with its diffuse map from the fitted camera,
  texture only (a de-lit map also re-lit with its fitted shading), against the photo inside the face
  (landmark hull minus eyes and inner mouth): PSNR, SSIM, mean colour bias;
* seams: on the same avatar, colour / gradient jump across the border of the photo region
  (``confidence >= blend_threshold``) against the same statistics inside either side (radius
  ``size / 256``);
* albedo recovery: synthetic renders (:mod:`digitaltwin_jax.synth`, procedural albedo maps with
  known values, random lighting preset, pose and camera imperfections, 512 x 512), textured through
  ``build_texture`` with the *true* camera and the pipeline's photo mask, compared in UV space with
  the true albedo where the photo saw the head (confidence >= 0.5): PSNR and mean absolute error,
  raw and after the best per-channel gain in linear light (exposure and light colour are not
  recoverable; what remains is shading left in the map).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from digitaltwin_jax.render import orbit_camera, render_mesh, uv_sphere
from digitaltwin_jax.texture import (
    PoissonConfig,
    SkinParams,
    TextureConfig,
    bake_procedural,
    build_texture,
    poisson_blend,
    project_texture,
    texel_interpolate,
    uv_sampling,
)

AREA = "texture"
ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeats):
    ws, cs, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        ws.append(time.perf_counter() - w0)
        cs.append(time.process_time() - c0)
    return 1e3 * float(np.median(ws)), 1e3 * min(ws), 1e3 * float(np.median(cs)), out


def poisson_case(size: int):
    img = iio.imread(ROOT / "examples" / "astronaut.png")[..., :3].astype(np.float32) / 255.0
    src = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    tgt = np.stack([0.75 + 0.05 * np.sin(6 * yy), 0.55 + 0.04 * np.cos(5 * xx), 0.45 + 0 * xx], -1)
    tgt = tgt + 0.02 * cv2.GaussianBlur(rng.standard_normal((size, size, 3)).astype(np.float32), (0, 0), 1.0)
    mask = ((xx - 0.45) ** 2 / 0.16**2 + (yy - 0.33) ** 2 / 0.22**2) < 1
    return np.clip(src, 0, 1).astype(np.float32), np.clip(tgt, 0, 1).astype(np.float32), mask


def _levels(a, b, mask):
    """|a - b| in 8-bit levels (a: float [0, 1] or uint8; b: float [0, 1])."""
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    e = np.abs(a - b) * 255.0
    return float(e[mask].mean()), float(np.percentile(e[mask], 99)), float(e.max())


def _model():
    asset = ROOT / "digitaltwin_jax" / "assets" / "ict_head_low.npz"
    if asset.exists():
        from digitaltwin_jax.model.head_model import load_head_model

        return "head low", load_head_model("low")
    import types

    v, f, uv, uvf = uv_sphere(48, 96, 90.0)
    return "uv sphere", types.SimpleNamespace(vertices=v, faces=f, uvs=uv, uv_faces=uvf,
                                              eye_mask=np.zeros(len(v), bool))


def run(quick: bool = False) -> list[dict]:
    reps = 1 if quick else 3
    load = os.getloadavg()[0]
    rows = []

    # ---- Poisson blending vs OpenCV
    sizes = (512, 1024) if quick else (1024, 2048)
    for size in sizes:
        src, tgt, mask = poisson_case(size)
        exact = poisson_blend(src, tgt, mask, config=PoissonConfig(method="multigrid", tol=1e-6))
        s8 = (src * 255 + 0.5).astype(np.uint8)
        t8 = (tgt * 255 + 0.5).astype(np.uint8)
        m8 = mask.astype(np.uint8) * 255
        ys, xs = np.nonzero(mask)
        centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
        cv_ms, cv_min, cv_cpu, cvout = _time(lambda: cv2.seamlessClone(s8, t8, m8, centre, cv2.NORMAL_CLONE), reps)
        cv_err = _levels(cvout, exact, mask)
        outside = float(np.abs(cvout.astype(np.int16) - t8)[~mask].max())
        configs = [("auto", PoissonConfig())]
        if size >= 1024:
            configs.append(("exact multigrid", PoissonConfig(method="multigrid")))
        if size >= 2048:
            configs.append(("one half-res level", PoissonConfig(twolevel_above=200_000)))
        for label, cfg in configs:
            ms, mn, cpu, (out, info) = _time(lambda: poisson_blend(src, tgt, mask, config=cfg, return_info=True), reps)
            mean, p99, mx = _levels(out, exact, mask)
            rows.append(dict(
                area=AREA, case=f"Poisson blend {size}x{size} ({label}, {int(mask.sum())} unknowns)",
                ours_ms=ms, baseline="cv2.seamlessClone NORMAL_CLONE", baseline_ms=cv_ms,
                target="<= OpenCV at 2048" if size == 2048 else "-",
                notes=f"ours {info['method']}, err vs exact (8-bit levels) mean {mean:.2f} p99 {p99:.1f} "
                      f"max {mx:.1f}; OpenCV vs exact mean {cv_err[0]:.1f} p99 {cv_err[1]:.0f}, changes "
                      f"outside mask up to {outside:.0f}; CPU ours {cpu:.0f} ms / cv2 {cv_cpu:.0f} ms; "
                      f"min wall {mn:.0f} / {cv_min:.0f}; load {load:.1f}"))

    # ---- projection at 2048 (and the whole texture stage)
    name, m = _model()
    size = 1024 if quick else 2048
    true = bake_procedural(SkinParams(tone=0.3, seed=5), m.vertices, m.faces, m.uvs, m.uv_faces, size)
    R, t = orbit_camera(25.0, distance=600.0, target=np.asarray(m.vertices).mean(axis=0))
    vc = np.asarray(m.vertices, np.float64) @ R.T.astype(np.float64) + t
    K = np.array([[1000.0, 0, 300], [0, 1000.0, 400], [0, 0, 1]])
    img, _ = render_mesh(vc, m.faces, K, (800, 600), uvs=m.uvs, uv_faces=m.uv_faces, texture=true,
                         ambient=1.0, diffuse=0.0, background=(0.2, 0.3, 0.5))
    photo = (img * 255 + 0.5).astype(np.uint8)
    smp = uv_sampling(m.uvs, m.uv_faces, size)
    ms, mn, cpu, proj = _time(lambda: project_texture(photo, vc, K, m, size, sampling=smp), reps)
    good = proj.confidence > 0.5
    psnr = 10 * np.log10(1.0 / np.mean((proj.texture[good] - true[good]) ** 2))
    # baseline: bare cv2.remap with the same texel -> pixel maps
    P = texel_interpolate(smp, vc, m.faces)
    xy = P[:, :2] / P[:, 2:] @ np.diag([K[0, 0], K[1, 1]]) + K[:2, 2]
    mapx = np.full(size * size, -1, np.float32)
    mapy = np.full(size * size, -1, np.float32)
    mapx[smp.texels], mapy[smp.texels] = xy[:, 0] - 0.5, xy[:, 1] - 0.5
    mapx, mapy = mapx.reshape(size, size), mapy.reshape(size, size)
    b_ms, _, b_cpu, _ = _time(lambda: cv2.remap(photo, mapx, mapy, cv2.INTER_LINEAR), max(reps, 3))
    rows.append(dict(area=AREA, case=f"project photo -> UV {size}x{size} ({name})", ours_ms=ms,
                     baseline="cv2.remap (sampling only)", baseline_ms=b_ms, target="-",
                     notes=f"visibility + confidence + sampling, UV raster precomputed; PSNR {psnr:.1f} dB on "
                           f"{good.mean() * 100:.0f}% of the map (conf > 0.5); CPU {cpu:.0f} ms; min {mn:.0f}; "
                           f"load {load:.1f}"))
    ms, mn, cpu, res = _time(lambda: build_texture(photo, vc, K, m, config=TextureConfig(size=size),
                                                   sampling=smp), 1)
    rows.append(dict(area=AREA, case=f"build_texture {size}x{size} (project + bank + Poisson + pad)",
                     ours_ms=ms, baseline=None, baseline_ms=None, target="-",
                     notes=f"Poisson {res.info['method']} on {res.info['unknowns']} texels; bank entry "
                           f"{res.bank_index} by {res.bank_rule}; CPU {cpu:.0f} ms; load {load:.1f}"))
    rows += fidelity(quick)
    return rows


def rerender_rows(texture_config=None, *, mask_kwargs: dict | None = None,
                  photo: str = "examples/astronaut.png") -> list[dict]:
    """Re-render and seam rows on ``photo`` (relative to the repository; module docstring).

    The avatar's texture is rebuilt with ``texture_config`` (default: :class:`TextureConfig`, 2048)
    on the fitted head.  A de-lit map is compared twice: re-lit with its fitted shading
    (:func:`~digitaltwin_jax.texture.relight_texture`: what the photo shows) and as it is (texture
    only).  Seams are measured on the map itself."""
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.pipeline import AvatarConfig, reconstruct

    image = read_image(ROOT / photo)
    av = reconstruct(image, config=AvatarConfig())
    return texture_fidelity_rows(image, av.vertices_camera, av.K, av.landmarks_2d,
                                 load_head_model(av.info["resolution"]), texture_config,
                                 mask_kwargs=mask_kwargs, name=photo)


def texture_fidelity_rows(photo, vertices_camera, K, landmarks, model, texture_config=None, *,
                          mask_kwargs: dict | None = None, name: str = "examples/astronaut.png") -> list[dict]:
    """The rows of :func:`rerender_rows` for a given fit (photo, camera-frame vertices, K, 68 landmarks);
    the photo is masked by :func:`~digitaltwin_jax.texture.face_region.projection_mask` (face oval,
    inner mouth and hair out; ``mask_kwargs`` are passed to it, e.g. ``hair=False, exclude_mouth=False``
    for the mask used before issue 19)."""
    from digitaltwin_jax.texture import relight_texture
    from digitaltwin_jax.texture.face_region import projection_mask
    from digitaltwin_jax.texture.metrics import rerender_scores, seam_scores

    cfg = texture_config or TextureConfig()
    region = projection_mask(photo, landmarks, **(mask_kwargs or {}))
    res = build_texture(photo, vertices_camera, K, model, config=cfg, image_mask=region)
    tex = (np.clip(res.diffuse, 0, 1) * 255 + 0.5).astype(np.uint8)  # as written to diffuse.png
    maps = [("texture only", tex)]
    if res.lighting is not None:
        relit = relight_texture(tex, res.lighting, vertices_camera, model, sampling=res.projected.sampling)
        maps.insert(0, ("de-lit map re-lit with its fitted shading", relit))
    rows = []
    for label, t in maps:
        rr = rerender_scores(photo, vertices_camera, model.faces, K, model.uvs, model.uv_faces, t, landmarks)
        rows.append(dict(area=AREA, case=f"re-render inside the face, {name} ({label})",
                         ours_ms=None, baseline=None, baseline_ms=None, target=">= 26 dB", value=rr.psnr,
                         notes=f"PSNR {rr.psnr:.2f} dB, SSIM {rr.ssim:.4f} on {rr.pixels} px; mean bias render - "
                               f"photo (R, G, B) {np.round(rr.bias, 1).tolist()} levels; blend {cfg.blend}, "
                               f"colour transfer {cfg.color_transfer}, de-lighting {cfg.delight is not None}"))
    size = tex.shape[0]
    chart = res.projected.chart_mask
    ss = seam_scores(tex, (res.confidence >= cfg.blend_threshold) & chart, chart, radius=max(1, size // 256))
    rows.append(dict(area=AREA, case=f"seam: photo region / bank border, {name}",
                     ours_ms=None, baseline=None, baseline_ms=None, target="ratios ~ 1", value=ss.gradient_ratio,
                     notes=f"colour jump {ss.colour_jump:.1f} levels (inside {ss.colour_inside:.1f}, bank "
                           f"{ss.colour_outside:.1f}; ratio {ss.colour_ratio:.2f}); gradient jump "
                           f"{ss.gradient_jump:.2f} (inside {ss.gradient_inside:.2f}, bank {ss.gradient_outside:.2f}; "
                           f"ratio {ss.gradient_ratio:.2f}); {ss.border_texels} border texels"))
    return rows


def albedo_rows(quick: bool = False, texture_config=None, *, mask_kwargs: dict | None = None) -> list[dict]:
    """Albedo recovery on synthetic renders (module docstring); ``texture_config`` (size forced to 512);
    the photo is masked as in the avatar pipeline (:func:`~digitaltwin_jax.texture.face_region.projection_mask`)."""
    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry
    from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer
    from digitaltwin_jax.synth.scene import SceneConfig, sample_scene
    from digitaltwin_jax.synth.shapes import GaussianIdentitySource
    from digitaltwin_jax.texture.face_region import projection_mask
    from digitaltwin_jax.texture.metrics import albedo_scores

    load = os.getloadavg()[0]
    m = load_head_model("low")
    n = 3 if quick else 8
    tsize = 512
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, tsize)
    bank = procedural_bank(geom, 4, seed=3)
    renderer = SceneRenderer(m, bank, RenderConfig())
    src = GaussianIdentitySource(m)
    cfg = dataclasses.replace(texture_config or TextureConfig(), size=tsize)
    smp = uv_sampling(m.uvs, m.uv_faces, tsize)
    scores = []
    for i in range(n):
        sc = sample_scene(i, 19, SceneConfig(image_size=512), src, m, len(bank))
        out = renderer.render(sc)
        vc = sc.vertices.astype(np.float64) @ sc.rotation.T.astype(np.float64) + sc.translation
        mask = projection_mask(out.image, out.landmarks, **(mask_kwargs or {}))
        res = build_texture(out.image, vc, sc.K, m, config=cfg, sampling=smp, image_mask=mask)
        seen = res.confidence >= 0.5
        scores.append(albedo_scores(res.diffuse, bank.maps[sc.albedo], seen))
    mean = lambda k: float(np.mean([getattr(s, k) for s in scores]))  # noqa: E731
    return [dict(area=AREA, case=f"albedo recovery, {n} synthetic renders (UV {tsize}, seen texels)",
                 ours_ms=None, baseline=None, baseline_ms=None, target="-", value=mean("psnr_gain"),
                 notes=f"PSNR {mean('psnr'):.2f} dB, MAE {mean('mae'):.1f} levels; after per-channel linear gain: "
                       f"PSNR {mean('psnr_gain'):.2f} dB, MAE {mean('mae_gain'):.1f} levels; "
                       f"{mean('texels'):.0f} texels per image; de-lighting {'on' if cfg.delight else 'off'}; "
                       f"load {load:.1f}")]


#: The real photos of the re-render rows (README "Texture fidelity"; licences in examples/README.md).
PHOTOS = ("examples/astronaut.png", "examples/grace_hopper.jpg")


def fidelity(quick: bool = False, *, texture_config=None, mask_kwargs: dict | None = None) -> list[dict]:
    """Issue 19 fidelity rows: re-render and seams on :data:`PHOTOS`, albedo recovery (module docstring)."""
    rows = []
    for photo in PHOTOS[:1] if quick else PHOTOS:
        rows += rerender_rows(texture_config, mask_kwargs=mask_kwargs, photo=photo)
    return rows + albedo_rows(quick, texture_config, mask_kwargs=mask_kwargs)


if __name__ == "__main__":
    import sys

    if "--fidelity" in sys.argv or "--albedo" in sys.argv:
        from digitaltwin_jax.texture.delight import DelightConfig

        # default: no de-lighting (the shipped default since issue 19's decision); --delight: de-lit maps
        tc = TextureConfig(delight=DelightConfig()) if "--delight" in sys.argv else TextureConfig()
        legacy = "--legacy" in sys.argv  # the texture stage before issue 19
        if legacy:
            tc = TextureConfig(blend="poisson", color_transfer=False, delight=None)
        fn = fidelity if "--fidelity" in sys.argv else albedo_rows
        mk = dict(hair=False, exclude_mouth=False) if legacy else None
        for r in fn(quick="--quick" in sys.argv, texture_config=tc, mask_kwargs=mk):
            print(r["case"], "|", r["notes"])
    else:
        for r in run(quick=True):
            print(r)
