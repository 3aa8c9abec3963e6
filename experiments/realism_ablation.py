"""Realism of the training renders to the face encoder, one ingredient at a time (issue 14, item 1:
"measure realism with numbers, each ingredient on and off"; paper section 3.2).

    python experiments/realism_ablation.py --root ~/.cache/digitaltwin_jax/realism_ablation \\
        --real ~/.cache/digitaltwin_jax/real_photos/bioguide --count 480 --seed 7001 \\
        [--groups recipe,masked_eyes,...] [--skin-bank BANK.npz] [--halves SPLIT.json] [--out FILE]

Starting from the shipped recipe (:func:`digitaltwin_jax.regressor.recipe.training_data_config`),
each variant switches one ingredient off and keeps everything else, image by image: the same seed,
the same heads (the DR population's shape ``i`` depends on ``(seed, i)`` only), poses, cameras,
lights, skin assignments and backgrounds, because every scene is drawn by
:func:`~digitaltwin_jax.synth.scene.sample_scene` exactly as for the training set and only then
changed:

* ``masked_eyes``: ``RenderConfig(eyes="masked")`` (the paper's black eye openings) instead of eyeballs;
* ``procedural_skin``: the synth engine's own procedural albedo bank instead of the texture
  pipeline's skin bank (same bank size, same map index per image);
* ``neutral``: the scene's expression offsets removed (neutral heads; the paper renders neutral);
* ``one_light``: every image lit by the unperturbed ``frontal_softbox`` preset instead of a random
  one of the 30 presets, randomly perturbed;
* ``studio_background``: every background the plain ``studio`` backdrop instead of the five
  procedural families;
* ``no_blur`` / ``no_noise`` / ``no_jpeg`` / ``no_camera_effects``: the scene's blur sigma, noise
  sigma, JPEG quality (all three) set to zero;
* ``photo_skin`` (with ``--skin-bank``): a photo-derived skin bank
  (:mod:`digitaltwin_jax.synth.photo_skin`) instead of the texture pipeline's procedural bank.

The recipe and its four camera-effect variants share one render per image: the engine renders the
scene with its camera effects zeroed and :func:`camera_effects` adds them afterwards (the engine's
steps: blur in linear light, sRGB encoding, sensor noise from the renderer's noise table, JPEG).
The only difference to the engine's own output is that the blur acts on the 8-bit clean image; the
script checks this on the first ``--check`` images against the engine's direct render and records
the pixel difference and the embedding distance.

Per variant: faces detected, detection rate, landmark NME (dlib's 68 points vs the projected ground
truth, :func:`regressor_realism.landmark_nme`), and against the real photos' dlib embeddings
(:func:`regressor_realism.real_embeddings`): mean distance real -> nearest render with a t interval,
render -> nearest other render, spread, Fréchet distance.  Nearest distances shrink as a set grows,
so every variant is scored on its first ``M`` faces in image order, ``M`` the smallest face count of
the variants run; the paired difference to the recipe (same real photos, t interval) and the
Fréchet difference on the images both detect, with +-1.96 bootstrap standard deviations (renders
resampled by image, photos resampled; :func:`frechet_bootstrap`), are given as well.  ``--extra
NAME=FOLDER`` adds a rendered data set of other scenes (e.g. the previous default), scored unpaired.
With ``--halves`` (a JSON file ``{"A": [names], "B": [names]}``) every variant is also scored
against each half of the real photos alone (the photo-skin bank must be scored only against the
half it was not built from).

Renders are not stored: per image the embeddings and landmarks are kept in ``ROOT/<group>.npz``
(resumable: a killed run continues at the last checkpoint).

Results file: ``experiments/results/realism_ablation.json`` (docs: Experiments, "Each ingredient
on and off" and "Photo-derived skin").
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

POST_VARIANTS = ("recipe", "no_blur", "no_noise", "no_jpeg", "no_camera_effects")
GROUPS = ("recipe", "masked_eyes", "procedural_skin", "neutral", "one_light", "studio_background", "photo_skin")
CHECKPOINT_EVERY = 40


# -- the variants -----------------------------------------------------------------------------------
def group_config(group: str, count: int, seed: int, skin_bank=None):
    """The :class:`~digitaltwin_jax.synth.dataset.DatasetConfig` a group renders with."""
    from digitaltwin_jax.regressor.recipe import training_data_config
    from digitaltwin_jax.synth.engine import RenderConfig

    cfg = training_data_config(count, seed)
    if group == "masked_eyes":
        return dataclasses.replace(cfg, render=dataclasses.replace(cfg.render, eyes="masked"))
    if group == "procedural_skin":
        return dataclasses.replace(cfg, albedo_source="procedural")
    if group == "photo_skin":
        if skin_bank is None:
            raise ValueError("group 'photo_skin' needs --skin-bank")
        from digitaltwin_jax.texture.bank import load_bank

        n = len(load_bank(skin_bank))  # every entry in use: subjects draw their map from [0, bank_size)
        return dataclasses.replace(cfg, texture_bank_path=str(Path(skin_bank).resolve()), bank_size=n)
    assert isinstance(cfg.render, RenderConfig)
    return cfg


def modify_scene(group: str, scene, model):
    """The scene of ``group`` from the recipe's scene (same draws; one ingredient changed)."""
    from digitaltwin_jax.synth import lighting
    from digitaltwin_jax.synth.backgrounds import BACKGROUND_KINDS

    if group == "neutral":
        offs = np.tensordot(scene.expression, np.asarray(model.expression_basis), axes=1).astype(np.float32)
        return dataclasses.replace(scene, vertices=(scene.vertices - offs).astype(np.float32),
                                   expression=np.zeros_like(scene.expression))
    if group == "one_light":
        return dataclasses.replace(scene, preset=0, lighting=lighting.PRESETS[0])
    if group == "studio_background":
        return dataclasses.replace(scene, background_kind=BACKGROUND_KINDS.index("studio"))
    return scene


def post_scene(variant: str, scene):
    """The recipe scene with the camera effects of ``variant`` switched off."""
    if variant == "no_blur":
        return dataclasses.replace(scene, blur_sigma=0.0)
    if variant == "no_noise":
        return dataclasses.replace(scene, noise_sigma=0.0)
    if variant == "no_jpeg":
        return dataclasses.replace(scene, jpeg_quality=0)
    if variant == "no_camera_effects":
        return dataclasses.replace(scene, blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=0)
    return scene


def camera_effects(clean, scene, renderer) -> np.ndarray:
    """``(S, S, 3) uint8``: the engine's camera effects (blur in linear light, sRGB, sensor noise
    from ``renderer``'s noise table at the scene's seed, JPEG) applied to a render made with them
    zeroed (:class:`~digitaltwin_jax.synth.engine.SceneRenderer`, eyeballs: no eye fill after them)."""
    import cv2

    from digitaltwin_jax.render.colorspace import linear_to_srgb8
    from digitaltwin_jax.synth.engine import sensor_effects

    out = np.asarray(clean)
    if scene.blur_sigma > 0.05:
        lin = renderer.lut[out]
        lin = cv2.GaussianBlur(lin, (0, 0), float(scene.blur_sigma), borderType=cv2.BORDER_REFLECT)
        out = linear_to_srgb8(lin)
    out = sensor_effects(out, scene.noise_sigma, scene.jpeg_quality, scene.seed, renderer._noise_table)
    return np.ascontiguousarray(out)


# -- rendering + front end ------------------------------------------------------------------------
def _state(root: Path, group: str, cfg):
    from digitaltwin_jax.synth.dataset import generate, make_render_state

    assets = root / f"assets_{group}"
    generate(assets, cfg, workers=1, progress=False, contact_sheet_path=None, max_shards=0)  # assets only
    return make_render_state(assets, cfg)


def _load_partial(path: Path):
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save(path: Path, arrays: dict):
    from digitaltwin_jax.io.atomic import atomic_write

    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def run_group(root: Path, group: str, count: int, seed: int, *, skin_bank=None, check: int = 0,
              log=print) -> dict:
    """Render ``count`` images of ``group`` and run the front end; ``{variant: (emb (n, 128),
    det (n, 68, 2))}`` plus ``"gt"`` (n, 68, 2) and ``"check"`` (engine-vs-script statistics)."""
    from digitaltwin_jax.regressor.data import _default_frontend
    from digitaltwin_jax.synth.scene import sample_scene

    cfg = group_config(group, count, seed, skin_bank)
    variants = POST_VARIANTS if group == "recipe" else (group,)
    path = root / f"{group}.npz"
    have = _load_partial(path)
    if have is not None and (int(have["count"]) != count or int(have["seed"]) != seed):
        raise ValueError(f"{path} was made with count={int(have['count'])}, seed={int(have['seed'])}; "
                         "use another --root")
    arrays = have or {"count": np.int64(count), "seed": np.int64(seed), "done": np.int64(0),
                      "gt": np.full((count, 68, 2), np.nan, np.float32),
                      **{f"emb_{v}": np.full((count, 128), np.nan, np.float32) for v in variants},
                      **{f"det_{v}": np.full((count, 68, 2), np.nan, np.float32) for v in variants},
                      "check_pixel_mean_abs": np.full(count, np.nan, np.float32),
                      "check_pixel_max_abs": np.full(count, np.nan, np.float32),
                      "check_embedding_distance": np.full(count, np.nan, np.float32)}
    start = int(arrays["done"])
    if start >= count:
        return arrays
    st = _state(root, group, cfg)
    renderer, model = st["renderer"], st["model"]
    t0 = time.perf_counter()
    for i in range(start, count):
        scene = sample_scene(i, cfg.seed, cfg.scene, st["source"], model, len(renderer.bank),
                             st["subject_albedo"], has_photos=False)
        scene = modify_scene(group, scene, model)
        if group == "recipe":
            clean = renderer.render(post_scene("no_camera_effects", scene))
            arrays["gt"][i] = clean.landmarks
            for v in variants:
                img = camera_effects(clean.image, post_scene(v, scene), renderer)
                fe = _default_frontend(img)
                if fe is not None:
                    arrays[f"emb_{v}"][i], arrays[f"det_{v}"][i] = fe
                if v == "recipe" and i < check:  # the engine's own output for the same scene
                    direct = renderer.render(scene).image
                    diff = np.abs(direct.astype(np.int16) - img.astype(np.int16))
                    arrays["check_pixel_mean_abs"][i] = diff.mean()
                    arrays["check_pixel_max_abs"][i] = diff.max()
                    fd = _default_frontend(direct)
                    if fe is not None and fd is not None:
                        arrays["check_embedding_distance"][i] = np.linalg.norm(fd[0] - fe[0])
        else:
            res = renderer.render(scene)
            arrays["gt"][i] = res.landmarks
            fe = _default_frontend(res.image)
            if fe is not None:
                arrays[f"emb_{group}"][i], arrays[f"det_{group}"][i] = fe
        if (i + 1) % CHECKPOINT_EVERY == 0 or i + 1 == count:
            arrays["done"] = np.int64(i + 1)
            _save(path, arrays)
            rate = (i + 1 - start) / (time.perf_counter() - t0)
            log(f"{group}: {i + 1}/{count} images, {rate:.2f} img/s")
    return arrays


# -- scoring --------------------------------------------------------------------------------------
def first_faces(emb, det, gt, m: int):
    """The first ``m`` images (in image order) with a detected face: ``(emb, det, gt, indices)``."""
    idx = np.flatnonzero(np.isfinite(emb[:, 0]))[:m]
    return emb[idx], det[idx], gt[idx], idx


def frechet_fast(x, y) -> float:
    """The Fréchet distance of :func:`digitaltwin_jax.evaluation.fidelity.frechet_distance` (NaN rows
    dropped) with ``tr (S_x S_y)^{1/2}`` as the sum of the square roots of the eigenvalues of
    ``S_x S_y`` (real, >= 0) instead of a matrix square root: ~20x faster, for the bootstrap."""
    a = x[np.all(np.isfinite(x), axis=1)]
    b = y[np.all(np.isfinite(y), axis=1)]
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = np.linalg.eigvals(sa @ sb).real
    tr = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa) + np.trace(sb) - 2.0 * tr)


def frechet_bootstrap(r, r_ref, q, *, n_boot: int = 100, seed: int = 0) -> dict:
    """Bootstrap standard deviations of ``F(r, q)`` (``"sd"``) and, with ``r_ref``, of
    ``F(r, q) - F(r_ref, q)`` (``"sd_diff"``), renders resampled by image (``r``, ``r_ref``: rows of the
    same images) and the real photos ``q`` resampled.  Intervals are ``estimate +- 1.96 sd``: the
    bootstrap's percentiles are not used because resampling with replacement repeats rows, which
    biases the Fréchet distance of a resample upward (the percentile interval can miss the estimate)."""
    rng = np.random.default_rng(seed)
    n, m = r.shape[0], q.shape[0]
    f, d = [], []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        j = rng.integers(0, m, m)
        a = frechet_fast(r[i], q[j])
        f.append(a)
        if r_ref is not None:
            d.append(a - frechet_fast(r_ref[i], q[j]))
    return {"sd": float(np.std(f, ddof=1)), "sd_diff": float(np.std(d, ddof=1)) if d else None}


def _ci(x: float, sd: float) -> dict:
    return {"mean": float(x), "lo": float(x - 1.96 * sd), "hi": float(x + 1.96 * sd), "sd": float(sd)}


def score(results: dict, real: np.ndarray, real_names: list, halves: dict | None, n_boot: int = 100,
          unpaired=()) -> dict:
    """The table (module docstring) from ``{variant: (emb, det, gt)}``; ``unpaired``: names of sets
    of other scenes (no paired difference to the recipe)."""
    from regressor_realism import landmark_nme, realism_row

    from digitaltwin_jax.evaluation.fidelity import frechet_distance, nearest_distances, paired_difference

    m = min(int(np.isfinite(e[:, 0]).sum()) for e, _, _ in results.values())
    sets = {"all": np.ones(len(real_names), bool)}
    if halves:
        for h in ("A", "B"):
            sets[h] = np.isin(np.asarray(real_names), np.asarray(halves[h]))
    ref = results.get("recipe")
    out = {"matched_faces": m, "real_sets": {k: int((v & np.isfinite(real[:, 0])).sum()) for k, v in sets.items()},
           "variants": {}}
    for name, (emb, det, gt) in results.items():
        ok = np.isfinite(emb[:, 0])
        nme = landmark_nme(det[ok], gt[ok])
        row = {"images": int(emb.shape[0]), "faces": int(ok.sum()), "detection_rate": float(ok.mean()),
               "landmark_nme_median": float(np.median(nme)), "landmark_nme_mean": float(np.mean(nme))}
        r, _, _, idx = first_faces(emb, det, gt, m)
        for sname, sel in sets.items():
            q = real[sel]
            q = q[np.isfinite(q[:, 0])]
            row_s = realism_row(r, q)
            row_s["frechet_ci"] = _ci(row_s["frechet_render_real"], frechet_bootstrap(r, None, q, n_boot=n_boot)["sd"])
            if ref is not None and name != "recipe" and name not in unpaired:
                r0 = first_faces(*ref, m)[0]
                row_s["nearest_minus_recipe"] = paired_difference(nearest_distances(q, r),
                                                                  nearest_distances(q, r0)).as_dict()
                # Fréchet difference on the images both variants detect (paired by image)
                both = np.isfinite(emb[:, 0]) & np.isfinite(ref[0][:, 0])
                fv, fr = frechet_distance(emb[both], q), frechet_distance(ref[0][both], q)
                sd = frechet_bootstrap(emb[both], ref[0][both], q, n_boot=n_boot)["sd_diff"]
                row_s["frechet_minus_recipe"] = dict(_ci(fv - fr, sd), n=int(both.sum()), variant=float(fv),
                                                     recipe=float(fr))
            row[f"vs_{sname}"] = row_s
        out["variants"][name] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="work folder (per-group embeddings, assets)")
    ap.add_argument("--real", required=True, help="folder of real photos (regressor_realism.real_embeddings)")
    ap.add_argument("--count", type=int, default=480)
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--groups", default=",".join(GROUPS[:-1]))
    ap.add_argument("--skin-bank", default=None, help="photo skin bank for the 'photo_skin' group")
    ap.add_argument("--halves", default=None, help='JSON {"A": [photo names], "B": [...]}')
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME=FOLDER: a rendered data set with a complete front-end cache, scored unpaired")
    ap.add_argument("--check", type=int, default=24, help="images checked against the engine's direct render")
    ap.add_argument("--out", default=str(HERE / "results" / "realism_ablation.json"))
    a = ap.parse_args(argv)
    from regressor_realism import real_embeddings

    from digitaltwin_jax.io.atomic import atomic_write_text

    root = Path(a.root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    groups = [g for g in a.groups.split(",") if g]
    for g in groups:
        if g not in GROUPS:
            raise SystemExit(f"unknown group {g!r}; known: {', '.join(GROUPS)}")
    t0 = time.perf_counter()
    real, names = real_embeddings(Path(a.real).expanduser())
    results, check = {}, None
    for g in groups:
        arr = run_group(root, g, a.count, a.seed, skin_bank=a.skin_bank, check=a.check if g == "recipe" else 0)
        for v in (POST_VARIANTS if g == "recipe" else (g,)):
            results[v] = (arr[f"emb_{v}"].astype(np.float64), arr[f"det_{v}"].astype(np.float64),
                          arr["gt"].astype(np.float64))
        if g == "recipe":
            c = np.isfinite(arr["check_pixel_mean_abs"])
            check = {"images": int(c.sum()), "pixel_mean_abs": float(np.nanmean(arr["check_pixel_mean_abs"])),
                     "pixel_max_abs": float(np.nanmax(arr["check_pixel_max_abs"])),
                     "embedding_distance_mean": float(np.nanmean(arr["check_embedding_distance"])),
                     "embedding_distance_max": float(np.nanmax(arr["check_embedding_distance"]))}
    from regressor_realism import render_set

    for spec in a.extra:
        name, folder = spec.split("=", 1)
        results[name] = render_set(Path(folder).expanduser())
    halves = json.loads(Path(a.halves).read_text()) if a.halves else None
    table = score(results, real, names, halves, unpaired=[s.split("=", 1)[0] for s in a.extra])
    out = {"command": "python experiments/realism_ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "count": a.count, "seed": a.seed, "skin_bank": a.skin_bank, "camera_effects_check": check,
           "seconds": round(time.perf_counter() - t0, 1), **table}
    atomic_write_text(Path(a.out), json.dumps(out, indent=1))
    for name, row in table["variants"].items():
        s = row["vs_all"]
        print(f"{name:20s} faces {row['faces']:4d} det {row['detection_rate']:.3f} "
              f"nme {row['landmark_nme_median']:.4f} "
              f"nearest {s['real_to_nearest_render']['mean']:.3f} spread {s['render_spread']:.3f} "
              f"frechet {s['frechet_render_real']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
