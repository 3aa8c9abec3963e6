"""Synthetic multi-view sets: several photos of one head from one camera (issue 16, item 3).

A set of ``heads`` heads, each photographed ``views`` times (1-5 by default) by *the same camera*:
the head's shape, skin (albedo), eyes, the camera's field of view and its distance to the face are
drawn once per head; each view has its own head yaw (a fixed schedule plus a small jitter, so the
first ``k`` views of a head are its ``k``-view subset: frontal first, then alternating left and
right), its own small roll and pitch, lighting preset, expression, background and camera
imperfections.  The head distribution, scene and render settings are those of the fidelity
benchmark's out-of-distribution set (b) (:func:`~digitaltwin_jax.synth.evalsets.out_of_distribution_config`).

The set is written in the layout of every other synthetic set (:mod:`.dataset`: ``manifest.json``,
one shard per head holding its views in order, image ``index = head * views + view``), so the front
end cache (:func:`digitaltwin_jax.regressor.data.frontend_cache`) and
:func:`digitaltwin_jax.regressor.data.load_eval_data` read it unchanged; the manifest adds a
``"multiview"`` entry (:class:`MultiViewConfig`).  Ground truth per image: the neutral head (the same
for all views of a head), intrinsics, camera rotation, translation and expression weights, as in the
other evaluation sets.  Resumable: finished head shards are kept; image ``(head, view)`` depends only
on the seed and the configuration.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write, atomic_write_text
from digitaltwin_jax.synth.dataset import (SHARD_KEYS, DatasetConfig, _clean_temporaries, _make_state, _prepare_ao,
                                           _prepare_bank, _shard_arrays, build_shape_source, shard_path)
from digitaltwin_jax.synth.evalsets import out_of_distribution_config
from digitaltwin_jax.synth.scene import euler_to_matrix, image_seed, sample_scene

__all__ = ["MultiViewConfig", "DEFAULT_YAWS_DEG", "multiview_scenes", "make_multiview_set", "view_groups"]

# frontal first, then alternating sides: the first k views are the k-view subset
DEFAULT_YAWS_DEG = (0.0, -25.0, 25.0, -12.0, 12.0)


@dataclasses.dataclass(frozen=True)
class MultiViewConfig:
    """A multi-view set.

    Attributes:
      heads: number of heads.  seed: the set's seed.
      yaws_deg: head yaw of each view (degrees; ``views = len(yaws_deg)``).
      yaw_jitter_deg: each view's yaw is ``yaws_deg[j] + U(-jitter, jitter)``.
      max_roll_pitch_deg: bound of each view's uniform roll and pitch.
      image_size: pixels (square).
    """

    heads: int
    seed: int
    yaws_deg: tuple[float, ...] = DEFAULT_YAWS_DEG
    yaw_jitter_deg: float = 4.0
    max_roll_pitch_deg: float = 8.0
    image_size: int = 512

    def __post_init__(self):
        if int(self.heads) < 1 or int(self.seed) < 0 or len(self.yaws_deg) < 1:
            raise ValueError(f"MultiViewConfig needs heads >= 1, seed >= 0 and >= 1 view, got {self}")
        if any(abs(float(y)) + float(self.yaw_jitter_deg) >= 80.0 for y in self.yaws_deg):
            raise ValueError(f"view yaws must stay below 80 degrees, got {self.yaws_deg} +- {self.yaw_jitter_deg}")

    @property
    def views(self) -> int:
        return len(self.yaws_deg)

    def dataset_config(self) -> DatasetConfig:
        """The per-image :class:`DatasetConfig` (set (b)'s distribution, one shard per head)."""
        base = out_of_distribution_config(int(self.heads) * self.views, int(self.seed), image_size=int(self.image_size))
        return dataclasses.replace(base, shard_size=self.views)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "yaws_deg": [float(y) for y in self.yaws_deg]}


def view_groups(indices, views: int) -> np.ndarray:
    """``(N,) int`` head number of each image index of a multi-view set (``index // views``)."""
    return np.asarray(indices, np.int64) // int(views)


def multiview_scenes(head: int, config: MultiViewConfig, dataset: DatasetConfig, shape_source, model, bank_size: int,
                     subject_albedo=None, has_photos: bool = False) -> list:
    """The :class:`~.scene.Scene` of every view of ``head`` (deterministic in the seed and ``head``).

    View 0's scene fixes the head (neutral shape, identity, albedo, iris, specular gain) and the camera
    (K, field of view, distance); view ``j`` takes its own lighting, expression, background and
    imperfections from the scene of image ``head * views + j`` and its pose from its own generator.
    """
    v = config.views
    base = [sample_scene(head * v + j, dataset.seed, dataset.scene, shape_source, model, bank_size,
                         subject_albedo, has_photos) for j in range(v)]
    s0 = base[0]
    eb = np.asarray(model.expression_basis, np.float64)
    neutral = np.asarray(s0.vertices, np.float64) - np.tensordot(np.asarray(s0.expression, np.float64), eb, axes=1)
    lm = neutral[np.asarray(model.landmark_indices)]
    centre_h = lm[17:68].mean(axis=0)
    # where view 0 puts the face centre (camera frame): the same camera distance for every view
    target = np.asarray(s0.rotation, np.float64) @ np.asarray(base[0].vertices, np.float64)[
        np.asarray(model.landmark_indices)][17:68].mean(axis=0) + np.asarray(s0.translation, np.float64)
    from digitaltwin_jax.camera import frontal_rotation

    out = []
    for j, s in enumerate(base):
        rng = np.random.default_rng(np.random.SeedSequence(image_seed(dataset.seed, head * v + j), spawn_key=(0x3D,)))
        roll, pitch = rng.uniform(-config.max_roll_pitch_deg, config.max_roll_pitch_deg, size=2)
        yaw = float(config.yaws_deg[j]) + rng.uniform(-config.yaw_jitter_deg, config.yaw_jitter_deg)
        euler = np.array([roll, yaw, pitch])
        R = frontal_rotation().astype(np.float64) @ euler_to_matrix(*euler)
        t = target - R @ centre_h
        verts = neutral + np.tensordot(np.asarray(s.expression, np.float64), eb, axes=1)
        out.append(dataclasses.replace(
            s, vertices=verts.astype(np.float32), identity=s0.identity, identity_residual=s0.identity_residual,
            subject=s0.subject, group=s0.group, euler_deg=euler.astype(np.float32), rotation=R.astype(np.float32),
            translation=t.astype(np.float32), K=s0.K, fov_deg=s0.fov_deg, albedo=s0.albedo,
            specular_gain=s0.specular_gain, iris_rgb=s0.iris_rgb))
    return out


def _write_manifest(root: Path, config: MultiViewConfig, ds: DatasetConfig):
    path = root / "manifest.json"
    want = {"config": json.loads(json.dumps(ds.to_json())), "multiview": config.to_json()}
    if path.exists():
        have = json.loads(path.read_text())
        if have.get("config") != want["config"] or have.get("multiview") != want["multiview"]:
            raise ValueError(f"{root} holds a set made with a different configuration (see {path}); "
                             "use a new folder or the same options")
        return
    atomic_write_text(path, json.dumps({**want, "num_shards": ds.num_shards,
                                        "shards": [shard_path(root, k).name for k in range(ds.num_shards)],
                                        "shard_keys": SHARD_KEYS}, indent=1))


def make_multiview_set(root, config: MultiViewConfig, *, frontend: bool = True, progress: bool = True) -> Path:
    """Render ``config`` into ``root`` (one shard per head, resumable) and, with ``frontend``, run the
    shipped front end on every image (cached next to the shards, :func:`~digitaltwin_jax.regressor.data.frontend_cache`).
    Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(root)
    ds = config.dataset_config()
    _write_manifest(root, config, ds)
    from digitaltwin_jax.model.head_model import load_head_model

    model = load_head_model(ds.resolution)
    bank = _prepare_bank(root, ds, model)
    _prepare_ao(root, ds, model, bank)
    if ds.sampler != "gaussian":
        build_shape_source(model, ds, root)
    pending = [h for h in range(int(config.heads)) if not shard_path(root, h).exists()]
    if pending:
        st = _make_state(root, ds)
        t0 = time.perf_counter()
        for n, h in enumerate(pending):
            scenes = multiview_scenes(h, config, ds, st["source"], model, len(st["renderer"].bank),
                                      st["subject_albedo"], has_photos=st["photos"] is not None)
            rows = [(s, st["renderer"].render(s)) for s in scenes]
            with atomic_write(shard_path(root, h)) as fh:
                np.savez(fh, **_shard_arrays(rows, st["renderer"]))
            if progress:
                print(f"multiview {root.name}: head {n + 1}/{len(pending)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if frontend:
        from digitaltwin_jax.regressor.data import frontend_cache

        frontend_cache(root, progress=progress, recompute=True)
    return root
