"""Write a synthetic training set to disk: sharded, resumable, deterministic, multi-process (paper
section 3.2: 10,000 rendered faces train the shape regressor of section 3.3).

Layout of an output folder::

    manifest.json        configuration (a rerun must match it), counts, shard names
    albedo_bank.npz      the albedo maps used (ids, tones, the generic specular map)
    ambient_occlusion.npy per-vertex ambient occlusion of the mean head
    population.npz       the subject database of the DR / C-PCA / No-Aug samplers, and
    shapes.npy           all their sampled shapes, shapes_meta.npz (group, closest subject)
    shard_00000.npz      images 0 .. shard_size-1 and their metadata (see SHARD_KEYS)
    ...
    contact_sheet.png    8 x 8 random renders
    summary.json         timings and counts of the last run

Each shard is written to a temporary file in the folder and renamed when complete, so a killed run
leaves whole shards only; a rerun skips them and renders the rest.  Image ``i`` depends only on
``(seed, i)`` and the configuration, never on the number of workers or on which shards already
exist.
"""
from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write, atomic_write_text
from digitaltwin_jax.synth import lighting as lighting_mod
from digitaltwin_jax.synth.albedo import AlbedoBank, procedural_bank, texture_bank_albedo, uv_geometry
from digitaltwin_jax.synth.backgrounds import BACKGROUND_KINDS, PhotoBackgrounds
from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer
from digitaltwin_jax.synth.scene import CameraConfig, PostConfig, SceneConfig, sample_scene
from digitaltwin_jax.synth.shapes import DetailedSource, GaussianIdentitySource

__all__ = ["DatasetConfig", "generate", "shard_path", "load_shard", "SHARD_KEYS", "contact_sheet",
           "build_shape_source", "SAMPLERS", "make_render_state", "render_shard"]

SAMPLERS = ("dr", "cpca", "noaug", "gaussian")
MAX_LIGHTS = 3

SHARD_KEYS = {
    "images": "(n, S, S, 3) uint8 sRGB renders",
    "face_mask": "(n, S, ceil(S/8)) uint8 np.packbits of head coverage >= 0.5 (axis=-1)",
    "eye_mask": "(n, S, ceil(S/8)) uint8 np.packbits of eye-opening coverage >= 0.5 (axis=-1)",
    "vertices": "(n, V, 3) float32 ground-truth head vertices, head frame, mm",
    "landmarks_2d": "(n, 68, 2) float32 projected landmarks, pixels, origin at the top-left image corner",
    "K": "(n, 3, 3) float32 intrinsics of the S x S image",
    "rotation": "(n, 3, 3) float32 camera rotation R (p_cam = R p + t)",
    "quaternion": "(n, 4) float32 R as a unit quaternion (w, x, y, z), w >= 0",
    "translation": "(n, 3) float32 t, mm",
    "euler_deg": "(n, 3) float32 head roll, yaw, pitch (R = diag(1,-1,-1) Rz Ry Rx)",
    "fov_deg": "(n,) float32 horizontal field of view",
    "identity": "(n, K) float32 identity coefficients (least-squares projection for non-linear samplers)",
    "identity_residual": "(n,) float32 RMS mm between the vertices and the identity reconstruction",
    "expression": "(n, M) float32 blendshape weights",
    "subject": "(n,) int32 closest population subject (-1: none)",
    "group": "(n,) int32 population group of that subject (-1: none)",
    "preset": "(n,) int16 lighting preset index into preset_names",
    "lights": f"(n, {MAX_LIGHTS}, 6) float32 perturbed lights: azimuth, elevation, intensity, kelvin, "
              "softness, shadows (zero rows: none)",
    "ambient": "(n, 6) float32 sky, ground, sky kelvin, ground kelvin, exposure target, camera-side fill",
    "albedo": "(n,) int32 index into albedo_ids",
    "background": "(n,) int8 index into background_kinds",
    "post": "(n, 4) float32 blur sigma (px), noise sigma, jpeg quality (0: none), specular gain",
    "seed": "(n,) uint64 per-image seed (image_seed(seed, index))",
    "index": "(n,) int64 image index in the data set",
    "preset_names": "(30,) str",
    "albedo_ids": "(B,) str",
    "background_kinds": "(6,) str",
}


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """A synthetic data set.

    Attributes:
      count: number of images.
      seed: data-set seed (image ``i`` uses ``image_seed(seed, i)``).
      shard_size: images per shard file.
      sampler: shape population: ``"dr"`` (paper), ``"cpca"``, ``"noaug"`` (ablations) or
        ``"gaussian"`` (identity coefficients N(0, 1), no population).
      resolution: head model resolution (``"low"`` or ``"full"``).
      population_size, population_groups: the stand-in subject database of the DR / C-PCA / No-Aug
        samplers (paper: 482 subjects in 6 groups; :mod:`.population`).
      bank_size: albedo maps in the bank.
      texture_size: albedo map side.
      albedo_source: ``"procedural"`` (:mod:`.albedo`'s skin model: tone, hair and brow colours,
        stubble, lash line) or ``"texture-bank"`` (the texture pipeline's bank,
        :mod:`digitaltwin_jax.texture.bank`: its procedural entries and any photo-derived maps).
      texture_bank_path: a saved texture bank (:func:`digitaltwin_jax.texture.bank.save_bank`) for
        ``"texture-bank"``; None uses ``default_texture_bank(bank_size, seed)``.
      background_dir: optional folder of background photos.
      scene: :class:`~.scene.SceneConfig`; render: :class:`~.engine.RenderConfig`.
      dr_radius: range of the DR sampler's polar radius r (paper: 0.6-1.3; larger radii extrapolate
        beyond the population, for out-of-distribution test sets).
      detail_rms: range (mm) of the smooth out-of-identity-span detail added to every head
        (:func:`~.shapes.smooth_detail`; 0 = none, the training default).
    """

    count: int = 10000
    seed: int = 0
    shard_size: int = 256
    sampler: str = "dr"
    resolution: str = "low"
    population_size: int = 482
    population_groups: int = 6
    bank_size: int = 64
    texture_size: int = 512
    albedo_source: str = "procedural"
    texture_bank_path: str | None = None
    background_dir: str | None = None
    scene: SceneConfig = SceneConfig()
    render: RenderConfig = RenderConfig()
    dr_radius: tuple[float, float] = (0.6, 1.3)
    detail_rms: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if not 0.0 <= float(self.dr_radius[0]) <= float(self.dr_radius[1]):
            raise ValueError(f"dr_radius must satisfy 0 <= lo <= hi, got {self.dr_radius}")
        if not 0.0 <= float(self.detail_rms[0]) <= float(self.detail_rms[1]):
            raise ValueError(f"detail_rms must satisfy 0 <= lo <= hi, got {self.detail_rms}")
        if int(self.count) < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if int(self.shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.albedo_source not in ("procedural", "texture-bank"):
            raise ValueError(f"albedo_source must be 'procedural' or 'texture-bank', got {self.albedo_source!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")

    @property
    def num_shards(self) -> int:
        return math.ceil(self.count / self.shard_size)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "DatasetConfig":
        d = dict(d)
        sc = dict(d.pop("scene"))
        sc["camera"] = CameraConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sc["camera"].items()})
        sc["post"] = PostConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sc["post"].items()})
        sc["perturbation"] = lighting_mod.Perturbation(**sc["perturbation"])
        rc = dict(d.pop("render"))
        rc["eye_fill"] = tuple(rc["eye_fill"])
        for k in ("dr_radius", "detail_rms"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(scene=SceneConfig(**sc), render=RenderConfig(**rc), **d)


def shard_path(out_dir, k: int) -> Path:
    """Path of shard ``k`` inside ``out_dir`` (``shard_00000.npz``, ...)."""
    return Path(out_dir) / f"shard_{k:05d}.npz"


def load_shard(path) -> dict:
    """All arrays of a shard as a dict (see :data:`SHARD_KEYS`)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# -- assets ---------------------------------------------------------------------------------------
def _bank_file(out_dir):
    return Path(out_dir) / "albedo_bank.npz"


def _population_file(out_dir):
    return Path(out_dir) / "population.npz"


def _prepare_bank(out_dir, config: DatasetConfig, model) -> AlbedoBank:
    path = _bank_file(out_dir)
    if path.exists():
        return _load_bank(path)
    geom = uv_geometry(model.vertices, model.faces, model.uvs, model.uv_faces, model.landmark_indices,
                       config.texture_size)
    if config.albedo_source == "procedural":
        bank = procedural_bank(geom, config.bank_size, config.seed)
    else:
        from digitaltwin_jax.texture.bank import default_texture_bank, load_bank

        tb = (load_bank(config.texture_bank_path) if config.texture_bank_path
              else default_texture_bank(config.bank_size, config.seed))
        bank = texture_bank_albedo(tb, model, geom)
    with atomic_write(path) as fh:
        np.savez(fh, maps=bank.maps, ids=np.asarray(bank.ids), tones=bank.tones, specular=bank.specular)
    return bank


def _ao_file(out_dir):
    return Path(out_dir) / "ambient_occlusion.npy"


def _prepare_ao(out_dir, config: DatasetConfig, model, bank: AlbedoBank):
    path = _ao_file(out_dir)
    if not path.exists():
        ones = np.ones(model.vertices.shape[0], np.float32)  # placeholder; the real one is computed here
        ao = SceneRenderer(model, bank, config.render, ambient_occlusion=ones).ambient_occlusion()
        with atomic_write(path) as fh:
            np.save(fh, ao)


def _load_bank(path) -> AlbedoBank:
    with np.load(path, allow_pickle=False) as z:
        return AlbedoBank(z["maps"], tuple(str(s) for s in z["ids"]), z["tones"], z["specular"])


def build_shape_source(model, config: DatasetConfig, out_dir=None):
    """The shape source of ``config.sampler`` (population prepared in / read from ``out_dir``).

    Returns ``(source, subject_albedo)``; ``subject_albedo`` maps population subjects to bank maps
    (None for the Gaussian source).
    """
    if config.sampler == "gaussian":
        source, subject_albedo = GaussianIdentitySource(model), None
    else:
        from digitaltwin_jax.synth import population as pop_mod  # needs geometry.sampling

        source, subject_albedo = pop_mod.population_source(model, config, out_dir)
    if float(config.detail_rms[1]) > 0.0:
        source = DetailedSource(source, model, config.detail_rms)
    return source, subject_albedo


# -- workers ----------------------------------------------------------------------------------------
_STATE: dict = {}


def _init_worker(out_dir, config_json, queue):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = DatasetConfig.from_json(config_json)
    _STATE.clear()
    _STATE.update(_make_state(out_dir, config))
    _STATE["queue"] = queue


def _make_state(out_dir, config: DatasetConfig) -> dict:
    from digitaltwin_jax.model.head_model import load_head_model

    model = load_head_model(config.resolution)
    bank = _load_bank(_bank_file(out_dir))
    source, subject_albedo = build_shape_source(model, config, out_dir)
    photos = PhotoBackgrounds.from_folder(config.background_dir) if config.background_dir else None
    ao = np.load(_ao_file(out_dir)) if _ao_file(out_dir).exists() else None
    renderer = SceneRenderer(model, bank, config.render, photos=photos, ambient_occlusion=ao)
    return {"out_dir": Path(out_dir), "config": config, "model": model, "renderer": renderer,
            "source": source, "subject_albedo": subject_albedo, "photos": photos}


def make_render_state(out_dir, config: DatasetConfig) -> dict:
    """What one worker process needs to render shards of the set in ``out_dir`` (head model, renderer,
    shape source), built from the assets :func:`generate` prepared there; build it once per process."""
    return _make_state(out_dir, config)


def render_shard(k: int, state: dict) -> tuple[int, int, float]:
    """Render shard ``k`` with a :func:`make_render_state` state and write it (atomically) into the
    set's folder; returns ``(k, images, seconds)``.  Image ``i`` depends only on ``(seed, i)``."""
    return _render_shard(k, state)


def _render_shard(k: int, state=None) -> tuple[int, int, float]:
    st = _STATE if state is None else state
    config: DatasetConfig = st["config"]
    model = st["model"]
    renderer: SceneRenderer = st["renderer"]
    lo = k * config.shard_size
    hi = min(config.count, lo + config.shard_size)
    t0 = time.perf_counter()
    rows = []
    queue = st.get("queue")
    for i in range(lo, hi):
        scene = sample_scene(i, config.seed, config.scene, st["source"], model, len(renderer.bank),
                             st["subject_albedo"], has_photos=st["photos"] is not None)
        res = renderer.render(scene)
        rows.append((scene, res))
        if queue is not None:
            queue.put(1)
    arrays = _shard_arrays(rows, renderer)
    with atomic_write(shard_path(st["out_dir"], k)) as fh:
        np.savez(fh, **arrays)
    return k, hi - lo, time.perf_counter() - t0


def _quaternion(R):
    from digitaltwin_jax.geometry.rotations import matrix_to_quaternion

    return np.asarray(matrix_to_quaternion(np.asarray(R, np.float32)), np.float32)


def _shard_arrays(rows, renderer: SceneRenderer) -> dict:
    scenes = [s for s, _ in rows]
    res = [r for _, r in rows]
    n = len(rows)
    lights = np.zeros((n, MAX_LIGHTS, 6), np.float32)
    for j, s in enumerate(scenes):
        for i, li in enumerate(s.lighting.lights[:MAX_LIGHTS]):
            lights[j, i] = (li.azimuth, li.elevation, li.intensity, li.kelvin, li.softness, float(li.shadows))
    R = np.stack([s.rotation for s in scenes]).astype(np.float32)
    return {
        "images": np.stack([r.image for r in res]),
        "face_mask": np.packbits(np.stack([r.face_alpha >= 0.5 for r in res]), axis=-1),
        "eye_mask": np.packbits(np.stack([r.eye_alpha >= 0.5 for r in res]), axis=-1),
        "vertices": np.stack([s.vertices for s in scenes]).astype(np.float32),
        "landmarks_2d": np.stack([r.landmarks for r in res]).astype(np.float32),
        "K": np.stack([s.K for s in scenes]).astype(np.float32),
        "rotation": R,
        "quaternion": _quaternion(R),
        "translation": np.stack([s.translation for s in scenes]).astype(np.float32),
        "euler_deg": np.stack([s.euler_deg for s in scenes]).astype(np.float32),
        "fov_deg": np.array([s.fov_deg for s in scenes], np.float32),
        "identity": np.stack([s.identity for s in scenes]).astype(np.float32),
        "identity_residual": np.array([s.identity_residual for s in scenes], np.float32),
        "expression": np.stack([s.expression for s in scenes]).astype(np.float32),
        "subject": np.array([s.subject for s in scenes], np.int32),
        "group": np.array([s.group for s in scenes], np.int32),
        "preset": np.array([s.preset for s in scenes], np.int16),
        "lights": lights,
        "ambient": np.array([(s.lighting.sky, s.lighting.ground, s.lighting.sky_kelvin, s.lighting.ground_kelvin,
                              s.lighting.exposure_target, s.lighting.fill) for s in scenes], np.float32),
        "albedo": np.array([s.albedo for s in scenes], np.int32),
        "background": np.array([r.background_kind for r in res], np.int8),
        "post": np.array([(s.blur_sigma, s.noise_sigma, s.jpeg_quality, s.specular_gain) for s in scenes], np.float32),
        "seed": np.array([s.seed for s in scenes], np.uint64),
        "index": np.array([s.index for s in scenes], np.int64),
        "preset_names": np.asarray(lighting_mod.PRESET_NAMES),
        "albedo_ids": np.asarray(renderer.bank.ids),
        "background_kinds": np.asarray(BACKGROUND_KINDS),
    }


# -- driver ---------------------------------------------------------------------------------------
def _check_manifest(out_dir: Path, config: DatasetConfig):
    path = out_dir / "manifest.json"
    want = config.to_json()
    if path.exists():
        have = json.loads(path.read_text())
        if have.get("config") != json.loads(json.dumps(want)):
            raise ValueError(
                f"{out_dir} holds a data set made with a different configuration (see {path}); "
                "use a new folder or the same options"
            )
    else:
        atomic_write_text(path, json.dumps({
            "config": want,
            "num_shards": config.num_shards,
            "shards": [shard_path(out_dir, k).name for k in range(config.num_shards)],
            "shard_keys": SHARD_KEYS,
        }, indent=1))


_OWN_FILES = ("shard_", "albedo_bank.npz", "ambient_occlusion.npy", "population.npz", "shapes.npy",
              "shapes_meta.npz", "manifest.json", "summary.json", "contact_sheet")


def _clean_temporaries(out_dir: Path):
    """Remove temporary files left by a killed run (only this module's, never other writers')."""
    for p in out_dir.glob(".*.tmp"):
        if not p.name[1:].startswith(_OWN_FILES):
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def generate(out_dir, config: DatasetConfig, *, workers: int = 2, progress: bool = True,
             contact_sheet_path="contact_sheet.png", max_shards: int | None = None, runner=None) -> dict:
    """Render the data set into ``out_dir`` (created), skipping shards that already exist.

    Args:
      out_dir: output folder.
      config: :class:`DatasetConfig`.
      workers: processes (1: render in this process).
      progress: show a tqdm bar (per image).
      contact_sheet_path: file name (inside ``out_dir``) of the 8x8 contact sheet, None for none.
      max_shards: render at most this many missing shards, then stop (for tests and partial runs).
      runner: render the missing shards elsewhere instead of in local processes:
        ``runner(out_dir, config, pending_shards, on_images) -> {shard: error}`` (e.g.
        :func:`digitaltwin_jax.synth.ray_shards.ray_runner`); ``on_images(n)`` advances the bar;
        failed shards are listed in the summary (``failed_shards``) and the set is not complete.

    Returns:
      summary dict: images rendered now, images total on disk, seconds, images per second.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out_dir)
    _check_manifest(out_dir, config)
    from digitaltwin_jax.model.head_model import load_head_model

    model = load_head_model(config.resolution)
    t_assets = time.perf_counter()
    bank = _prepare_bank(out_dir, config, model)
    _prepare_ao(out_dir, config, model, bank)
    if config.sampler != "gaussian":
        build_shape_source(model, config, out_dir)  # writes population.npz once
    t_assets = time.perf_counter() - t_assets
    pending = [k for k in range(config.num_shards) if not shard_path(out_dir, k).exists()]
    if max_shards is not None:
        pending = pending[: int(max_shards)]
    todo = sum(min(config.count, (k + 1) * config.shard_size) - k * config.shard_size for k in pending)
    done_before = config.count - sum(
        min(config.count, (k + 1) * config.shard_size) - k * config.shard_size
        for k in range(config.num_shards) if not shard_path(out_dir, k).exists())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.count, initial=done_before, unit="img", desc="synth", smoothing=0.05)
    t0 = time.perf_counter()
    t_init = 0.0
    failed = {}
    if pending and runner is not None:
        failed = dict(runner(out_dir, config, pending, bar.update if bar is not None else (lambda n: None)) or {})
        todo -= sum(min(config.count, (k + 1) * config.shard_size) - k * config.shard_size for k in failed)
    elif pending and workers <= 1:
        ti = time.perf_counter()
        state = _make_state(out_dir, config)
        t_init = time.perf_counter() - ti
        for k in pending:
            _, n, _ = _render_shard(k, state)
            if bar is not None:
                bar.update(n)
    elif pending:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        stop = threading.Event()

        def pump():
            while not stop.is_set():
                try:
                    queue.get(timeout=0.2)
                except Exception:
                    continue
                if bar is not None:
                    bar.update(1)

        th = threading.Thread(target=pump, daemon=True)
        th.start()
        try:
            with ctx.Pool(min(int(workers), len(pending)), initializer=_init_worker,
                          initargs=(str(out_dir), config.to_json(), queue)) as pool:
                for _ in pool.imap_unordered(_render_shard, pending):
                    pass
        finally:
            time.sleep(0.3)
            stop.set()
            th.join()
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    complete = all(shard_path(out_dir, k).exists() for k in range(config.num_shards))
    summary = {
        "rendered_now": int(todo),
        "seconds": round(seconds, 2),
        "images_per_second": round(todo / seconds, 3) if todo and seconds > 0 else None,
        "asset_seconds": round(t_assets, 2),
        "worker_init_seconds_inprocess": round(t_init, 2),
        "workers": int(workers),
        "complete": complete,
        **({"failed_shards": {str(k): v for k, v in failed.items()}} if runner is not None else {}),
        "count": config.count,
    }
    if complete and contact_sheet_path:
        contact_sheet(out_dir, config, out_dir / contact_sheet_path)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def contact_sheet(out_dir, config: DatasetConfig, path, *, n: int = 64, columns: int = 8) -> np.ndarray:
    """Write an ``columns``-wide grid of ``n`` random images of the set (chosen by the seed) as PNG;
    returns the ``(rows*S, columns*S, 3) uint8`` sheet."""
    import imageio.v3 as iio

    rng = np.random.default_rng(np.random.SeedSequence([int(config.seed), 0xC0DAC7]))
    pick = np.sort(rng.choice(config.count, size=min(n, config.count), replace=False))
    tiles = []
    for k in np.unique(pick // config.shard_size):
        with np.load(shard_path(out_dir, int(k)), allow_pickle=False) as z:
            imgs = z["images"]
            for i in pick[pick // config.shard_size == k]:
                tiles.append(imgs[int(i) - int(k) * config.shard_size])
    s = tiles[0].shape[0]
    rows = math.ceil(len(tiles) / columns)
    sheet = np.zeros((rows * s, columns * s, 3), np.uint8)
    for j, t in enumerate(tiles):
        r, c = divmod(j, columns)
        sheet[r * s:(r + 1) * s, c * s:(c + 1) * s] = t
    with atomic_write(path) as fh:
        iio.imwrite(fh, sheet, extension=".png")
    return sheet
