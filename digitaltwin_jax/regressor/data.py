"""Training data of the shape regressor: (identity embedding, ground-truth vertices) pairs.

The paper (section 3.3) trains on 10,000 synthetic renders of augmented heads; the encoder's
features are computed once and cached next to the data (``frontend_cache.npz`` in the data-set
folder written by :mod:`digitaltwin_jax.synth.dataset`, see :func:`frontend_cache`).  This module is the data layer only: a small frozen container, a
subject-disjoint split, the synthetic-shard reader with its embedding cache, and a generated toy
set for tests.

Arrays: ``embeddings (N, D) float32``, ``vertices (N, V, 3) float32`` (mm, head frame),
``subject_ids (N,) int64`` (renders of the same head share an id: splits never separate them).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "ShapeDataset",
    "make_dataset",
    "split_by_subject",
    "make_toy_dataset",
    "concat_datasets",
    "FRONTEND_CACHE",
    "frontend_cache",
    "load_frontend_cache",
    "run_frontend_on_shard",
    "load_synth_dataset",
    "load_eval_data",
    "head_ids",
]


@dataclasses.dataclass(frozen=True)
class ShapeDataset:
    """Embedding/shape pairs.

    Attributes:
      embeddings: ``(N, D) float32`` encoder features of the images.
      vertices: ``(N, V, 3) float32`` ground-truth neutral head of each image, mm.
      subject_ids: ``(N,) int64`` id of the head (several renders of one head share it).
      sample_ids: ``(N,)`` str, where each sample came from (e.g. ``"shard_000/12"``).
    """

    embeddings: np.ndarray
    vertices: np.ndarray
    subject_ids: np.ndarray
    sample_ids: np.ndarray

    def __post_init__(self):
        e, v, s = self.embeddings, self.vertices, self.subject_ids
        if e.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got {e.shape}")
        if v.ndim != 3 or v.shape[2] != 3:
            raise ValueError(f"vertices must be (N, V, 3), got {v.shape}")
        n = e.shape[0]
        if v.shape[0] != n or s.shape != (n,) or self.sample_ids.shape != (n,):
            raise ValueError(
                f"inconsistent sizes: embeddings {e.shape}, vertices {v.shape}, subject_ids {s.shape}, "
                f"sample_ids {self.sample_ids.shape}"
            )
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(v))):
            raise ValueError("dataset contains NaN or inf")

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[1])

    def take(self, index) -> "ShapeDataset":
        """The samples at ``index`` (int array or boolean mask)."""
        return ShapeDataset(
            self.embeddings[index], self.vertices[index], self.subject_ids[index], self.sample_ids[index]
        )


def make_dataset(embeddings, vertices, subject_ids=None, sample_ids=None) -> ShapeDataset:
    """Build a :class:`ShapeDataset` with dtype conversion (ids default to 0..N-1)."""
    e = np.asarray(embeddings, np.float32)
    v = np.asarray(vertices, np.float32)
    n = e.shape[0]
    s = np.arange(n, dtype=np.int64) if subject_ids is None else np.asarray(subject_ids, np.int64)
    ids = np.array([str(i) for i in range(n)]) if sample_ids is None else np.asarray(sample_ids).astype(str)
    return ShapeDataset(e, v, s, ids)


def concat_datasets(parts) -> ShapeDataset:
    """Concatenate datasets (same D and V)."""
    parts = list(parts)
    if not parts:
        raise ValueError("no datasets to concatenate")
    return ShapeDataset(
        np.concatenate([p.embeddings for p in parts]),
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.subject_ids for p in parts]),
        np.concatenate([p.sample_ids for p in parts]),
    )


def split_by_subject(dataset: ShapeDataset, fraction: float, seed: int = 0) -> tuple[ShapeDataset, ShapeDataset]:
    """Split into (rest, held) with about ``fraction`` of the *subjects* held out (at least one).

    Every render of a subject lands on the same side, so the held part has heads never seen in
    the rest.  Deterministic for a seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    subjects = np.unique(dataset.subject_ids)
    if subjects.size < 2:
        raise ValueError("need at least two subjects to split by subject")
    rng = np.random.default_rng(seed)
    k = min(max(1, int(round(fraction * subjects.size))), subjects.size - 1)
    held = rng.choice(subjects, size=k, replace=False)
    mask = np.isin(dataset.subject_ids, held)
    return dataset.take(~mask), dataset.take(mask)


def make_toy_dataset(
    mean,
    basis,
    num_samples: int,
    embedding_dim: int = 128,
    num_coeffs: int | None = None,
    noise: float = 0.05,
    seed: int = 0,
    projection_seed: int = 1234,
) -> tuple[ShapeDataset, np.ndarray]:
    """A generated stand-in for rendered data: random identity shapes + synthetic embeddings.

    ``shape = mean + a @ basis`` with ``a ~ N(0, I)``; ``embedding = tanh(a @ P) + noise * n`` with
    a fixed random ``P`` (from ``projection_seed``, shared by train and test sets) -- a nonlinear
    but learnable map, as a face-recognition feature is.

    Args:
      mean: ``(V, 3)`` mean shape; basis: ``(K, V, 3)`` identity modes (e.g. ``model.identity_basis``).
      num_samples: N. embedding_dim: D. num_coeffs: use the leading modes only (default K).
      noise: std of the additive embedding noise. seed: sample seed.

    Returns:
      (dataset, coefficients ``(N, K') float32``).
    """
    mean = np.asarray(mean, np.float32)
    basis = np.asarray(basis, np.float32)
    k = basis.shape[0] if num_coeffs is None else int(num_coeffs)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((num_samples, k)).astype(np.float32)
    verts = mean[None] + np.tensordot(a, basis[:k], axes=1)
    proj = np.random.default_rng(projection_seed).standard_normal((k, embedding_dim)).astype(np.float32)
    proj /= np.sqrt(k)
    emb = np.tanh(a @ proj) + noise * rng.standard_normal((num_samples, embedding_dim)).astype(np.float32)
    ds = make_dataset(emb, verts, np.arange(num_samples), [f"toy/{seed}/{i}" for i in range(num_samples)])
    return ds, a




# --------------------------------------------------------------------------------------------------
# synthetic data sets (digitaltwin_jax.synth.dataset) + the front-end cache
# --------------------------------------------------------------------------------------------------
FRONTEND_CACHE = "frontend_cache.npz"


def _shards(root: Path) -> list[Path]:
    root = Path(root)
    man = root / "manifest.json"
    if not man.exists():
        raise FileNotFoundError(f"{root} is not a synthetic data set (no manifest.json)")
    names = json.loads(man.read_text()).get("shards", [])
    paths = [root / n for n in names if (root / n).exists()]
    if not paths:
        raise FileNotFoundError(f"{root} has no finished shard yet")
    return paths


def _manifest_info(root: Path) -> dict:
    cfg = json.loads((Path(root) / "manifest.json").read_text()).get("config", {})
    return {
        "path": str(Path(root).resolve()),
        "seed": cfg.get("seed"),
        "sampler": cfg.get("sampler"),
        "count": cfg.get("count"),
        "resolution": cfg.get("resolution"),
        "image_size": (cfg.get("scene") or {}).get("image_size"),
    }


def load_frontend_cache(root) -> dict:
    """``{"index": (N,) int64, "embeddings": (N, D) float32, "landmarks": (N, 68, 2) float32}``
    (NaN rows: no face found); empty arrays when there is no cache yet."""
    path = Path(root) / FRONTEND_CACHE
    if not path.exists():
        return {"index": np.zeros(0, np.int64), "embeddings": np.zeros((0, 128), np.float32),
                "landmarks": np.zeros((0, 68, 2), np.float32)}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in ("index", "embeddings", "landmarks")}


def _save_frontend_cache(root, rows: dict, meta: dict) -> None:
    import io

    from digitaltwin_jax.io.atomic import atomic_write_bytes

    idx = np.array(sorted(rows), np.int64)
    emb = np.stack([rows[i][0] for i in idx]).astype(np.float32)
    lms = np.stack([rows[i][1] for i in idx]).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, index=idx, embeddings=emb, landmarks=lms, meta=json.dumps(meta))
    atomic_write_bytes(Path(root) / FRONTEND_CACHE, buf.getvalue())


_LEGACY_DEFAULT_LABEL = "dlib HOG + 68 landmarks + ResNet v1 (digitaltwin_jax.frontend)"


def _default_frontend_config() -> dict:
    """The shipped front end's configuration (what :func:`_default_frontend` depends on)."""
    from digitaltwin_jax.frontend.api import DEFAULT_LANDMARKS, DEFAULT_MIN_EYE_DISTANCE
    from digitaltwin_jax.frontend.dlib_models import _MODEL_FILES
    from digitaltwin_jax.frontend.merged import MergedConfig
    from digitaltwin_jax.frontend.refine import RefineConfig

    models = [_MODEL_FILES["face_recognition"], "mediapipe-0.10.21 face detection, face_landmark, iris_landmark"]
    if DEFAULT_LANDMARKS == "dlib":
        models.insert(0, _MODEL_FILES["shape_predictor_68"])
    else:
        models += [_MODEL_FILES["shape_predictor_5"], "dense_to_68.npz"]
    return {
        "name": f"MergedDetector (BlazeFace + dlib HOG, Face Mesh; {DEFAULT_LANDMARKS} 68 points) + ResNet v1 "
                "(digitaltwin_jax.frontend)",
        "detection": dataclasses.asdict(MergedConfig(landmarks=DEFAULT_LANDMARKS).hog),
        "merged": {k: v for k, v in dataclasses.asdict(MergedConfig(landmarks=DEFAULT_LANDMARKS)).items() if k != "hog"},
        "refine": dataclasses.asdict(RefineConfig()),
        "min_eye_distance": DEFAULT_MIN_EYE_DISTANCE,
        "models": models,
        "face": "first (detect_faces order)",
    }


def _frontend_config(frontend, frontend_config) -> dict:
    """JSON-able identity of the front end that fills the cache (stored in its meta)."""
    if frontend_config is not None:
        cfg = frontend_config if isinstance(frontend_config, dict) else {"name": str(frontend_config)}
    elif frontend is None:
        cfg = _default_frontend_config()
    else:
        cfg = {"name": f"{getattr(frontend, '__module__', '?')}.{getattr(frontend, '__qualname__', type(frontend).__qualname__)}"}
    return json.loads(json.dumps(cfg, sort_keys=True))  # normalised: tuples -> lists, key order


def _cache_meta(root) -> dict:
    path = Path(root) / FRONTEND_CACHE
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"])) if "meta" in z.files else {}


def _default_frontend(image):
    """``image -> (embedding (128,), landmarks (68, 2))`` or None: dlib detection + ResNet."""
    from digitaltwin_jax.frontend import FrontendError, detect_faces, identity_embedding

    try:
        faces = detect_faces(image)
    except FrontendError:
        return None
    if not faces:
        return None
    face = faces[0]
    return identity_embedding(image, face), np.asarray(face.landmarks, np.float32)


def run_frontend_on_shard(frontend: Callable, path, positions) -> list:
    """``[(image index, frontend(image))]`` for the rows ``positions`` of one shard file (the unit of
    work of :func:`frontend_cache`, locally or on a worker)."""
    with np.load(path, allow_pickle=False) as z:
        index = z["index"].astype(np.int64)
        images = z["images"]
        return [(int(index[j]), frontend(images[j])) for j in positions]


def frontend_cache(root, limit: int | None = None, frontend: Callable | None = None, save_every: int = 256,
                   progress: bool = True, *, frontend_config: dict | str | None = None,
                   recompute: bool = False, runner: Callable | None = None) -> tuple[int, int]:
    """Run the front end on every image of a synthetic data set and cache the results (resumable).

    Images already in ``root/frontend_cache.npz`` are skipped; the cache is rewritten atomically
    every ``save_every`` new images and at the end, so an interrupted run resumes where it stopped.
    The cache's meta records the producing front end's configuration (``meta["frontend_config"]``);
    a run with a different front end does not mix its results into it: it raises ValueError, or
    with ``recompute=True`` discards the cached rows and starts over.

    Args:
      root: data-set folder (``manifest.json`` + ``shard_*.npz``).
      limit: only images with index < limit.
      frontend: ``image (H, W, 3) uint8 -> (embedding (D,), landmarks (68, 2)) or None``; default
        dlib detection + identity embedding (the largest face).
      save_every: cache write period.  progress: tqdm bar.
      frontend_config: JSON-able configuration identifying ``frontend`` (a dict, or a name); default:
        the shipped front end's detection / refinement settings and model files, or for a custom
        callable its ``module.qualname``.
      recompute: start over when the cache was made by another front-end configuration.
      runner: compute elsewhere (e.g. :func:`digitaltwin_jax.regressor.ray_embed.ray_runner`):
        ``runner(work, frontend, record) -> {shard path: error}`` with ``work`` a list of
        ``(shard path, [row positions])``; it calls ``record(run_frontend_on_shard(frontend, path,
        rows))`` as each shard's results arrive.  None: in this process.

    Returns:
      (images considered, images with a face).

    Raises:
      ValueError: the existing cache was made by a different front-end configuration (the message
        shows both) and ``recompute`` is False.
      RuntimeError: a runner reported failed shards (every other result is cached first).
    """
    from tqdm.auto import tqdm

    fe = _default_frontend if frontend is None else frontend
    cfg = _frontend_config(frontend, frontend_config)
    legacy_label = _LEGACY_DEFAULT_LABEL if frontend is None else getattr(frontend, "__name__", "custom")
    meta = {"frontend": cfg.get("name", legacy_label), "frontend_config": cfg}
    cache = load_frontend_cache(root)
    if len(cache["index"]):
        old = _cache_meta(root)
        # caches written before configurations were recorded are matched on their old label
        same = old.get("frontend_config") == cfg if "frontend_config" in old else (
            frontend_config is None and old.get("frontend") == legacy_label)
        if not same and not recompute:
            raise ValueError(
                f"{Path(root) / FRONTEND_CACHE} was made by front end "
                f"{json.dumps(old.get('frontend_config', old.get('frontend')), sort_keys=True)}, not by "
                f"{json.dumps(cfg, sort_keys=True)}; delete it or pass recompute=True to start over"
            )
        if not same:  # recompute everything
            cache = {"index": np.zeros(0, np.int64), "embeddings": np.zeros((0, 128), np.float32),
                     "landmarks": np.zeros((0, 68, 2), np.float32)}
    rows = {int(i): (e, l) for i, e, l in zip(cache["index"], cache["embeddings"], cache["landmarks"])}
    dim = cache["embeddings"].shape[1] if len(rows) else None
    considered, new = 0, 0
    paths = _shards(root)
    work = []  # (shard path, [row positions in the shard to compute])
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            index = z["index"].astype(np.int64)
        keep = np.ones(index.shape, bool) if limit is None else index < limit
        todo = [int(j) for j in np.flatnonzero(keep) if int(index[j]) not in rows]
        considered += int(keep.sum())
        if todo:
            work.append((str(path), todo))
    bar = tqdm(desc="front end", total=sum(len(t) for _, t in work), disable=not progress)

    def record(results):
        nonlocal dim, new
        for i, out in results:
            if out is None:
                if dim is None:
                    dim = 128
                rows[int(i)] = (np.full(dim, np.nan, np.float32), np.full((68, 2), np.nan, np.float32))
            else:
                e, lm = out
                e = np.asarray(e, np.float32).ravel()
                dim = e.shape[0] if dim is None else dim
                rows[int(i)] = (e, np.asarray(lm, np.float32).reshape(68, 2))
            new += 1
            bar.update(1)
            if new % save_every == 0:
                _save_frontend_cache(root, rows, meta)

    failed = {}
    if runner is None:
        for path, todo in work:
            record(run_frontend_on_shard(fe, path, todo))
    else:
        failed = dict(runner(work, fe, record) or {})
    bar.close()
    if new:
        _save_frontend_cache(root, rows, meta)
    if failed:
        raise RuntimeError(f"the front end failed on {len(failed)} shard(s) of {root} (the others are cached; "
                           f"rerun to retry): " + "; ".join(f"{Path(k).name}: {v}" for k, v in failed.items()))
    found = sum(1 for i, (e, _) in rows.items() if np.all(np.isfinite(e)) and (limit is None or i < limit))
    return considered, found


def head_ids(vertices) -> np.ndarray:
    """``(N,) int64`` id per distinct head: renders of an identical vertex array share an id (the
    No-Aug sampler re-renders population subjects; DR / C-PCA heads are all new)."""
    import hashlib

    v = np.ascontiguousarray(np.asarray(vertices, np.float32))
    keys = [hashlib.sha1(v[i].tobytes()).hexdigest() for i in range(v.shape[0])]
    # ids in order of first appearance (deterministic, independent of hash values)
    first = {}
    for k in keys:
        first.setdefault(k, len(first))
    return np.array([first[k] for k in keys], np.int64)


READ_THREADS = 8


def _read_one_shard(path, keys, limit) -> dict:
    with np.load(path, allow_pickle=False) as z:
        index = z["index"].astype(np.int64)
        keep = np.ones(index.shape, bool) if limit is None else index < limit
        return {k: z[k][keep] for k in keys}


def _read_shards(root, keys, limit, threads: int = READ_THREADS):
    """``{key: concatenated array}`` of the finished shards of a set, in shard order.  Shards are read
    by ``threads`` threads at once (zip reads and decompression release the GIL; on a network file
    system the latency of one file hides behind the others)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = _shards(root)
    with ThreadPoolExecutor(max(1, min(int(threads), len(paths)))) as pool:
        parts = list(pool.map(lambda p: _read_one_shard(p, keys, limit), paths))
    return {k: np.concatenate([part[k] for part in parts]) for k in keys}


def _cached_rows(root, index):
    cache = load_frontend_cache(root)
    pos = {int(i): r for r, i in enumerate(cache["index"])}
    missing = [int(i) for i in index if int(i) not in pos]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} images of {root} have no cached front-end result "
            f"(first: {missing[:5]}); run `digitaltwin regressor embed {root}` first"
        )
    rows = np.array([pos[int(i)] for i in index], np.int64)
    return cache["embeddings"][rows], cache["landmarks"][rows]


def load_synth_dataset(root, limit: int | None = None, tag: int = 0) -> tuple[ShapeDataset, dict]:
    """Training pairs of a synthetic data set whose front-end cache is complete.

    Images where no face was found are dropped (counted in the returned info).  ``tag`` is added
    (times 2^32) to the head ids, so heads of different data sets never share an id.  Renders with
    expressions are accepted: the target is the neutral head (:func:`_neutral_vertices`).

    Returns:
      (dataset with ``sample_ids = "<folder>/<index>"`` and head-identity ``subject_ids``, info dict:
      path, seed, sampler, count, resolution, image_size, num_images, num_with_face).
    """
    root = Path(root)
    arr = _read_shards(root, ("index", "vertices", "expression"), limit)
    verts = _neutral_vertices(root, arr["vertices"], arr["expression"])
    emb, _ = _cached_rows(root, arr["index"])
    ok = np.all(np.isfinite(emb), axis=1)
    info = _manifest_info(root)
    info.update({"num_images": int(ok.size), "num_with_face": int(ok.sum())})
    ids = np.array([f"{root.name}/{i}" for i in arr["index"][ok]])
    heads = head_ids(verts[ok])
    ds = ShapeDataset(emb[ok].astype(np.float32), verts[ok].astype(np.float32),
                      heads + (np.int64(tag) << np.int64(32)), ids)
    return ds, info


def _neutral_vertices(root, vertices, expression) -> np.ndarray:
    """``(N, V, 3) float64`` neutral heads: the rendered vertices minus the blendshape offsets of the
    recorded expression weights (the blendshapes are linear, so this is exact)."""
    verts = np.asarray(vertices, np.float64)
    if np.any(np.abs(expression) > 0):
        from digitaltwin_jax.model.head_model import load_head_model

        model = load_head_model(_manifest_info(root).get("resolution", "low"))
        verts = verts - np.tensordot(np.asarray(expression, np.float64),
                                     np.asarray(model.expression_basis, np.float64), axes=1)
    return verts


def load_eval_data(root, limit: int | None = None, *, allow_expressions: bool = False):
    """Held-out items of a synthetic data set (all images; those without a face are kept with NaN
    rows and reported as failures).  Returns ``(EvalData, info)``.

    With ``allow_expressions`` renders with expressions are accepted: the ground truth is then the
    neutral head (the rendered vertices minus the blendshape offsets of the recorded weights; the
    blendshapes are linear, so this is exact).  The true intrinsics, camera rotation and expression
    weights are carried along (focal, pose and expression rows of the fidelity benchmark).
    """
    from digitaltwin_jax.regressor.evaluate import EvalData

    root = Path(root)
    arr = _read_shards(root, ("index", "vertices", "expression", "images"), limit)
    with np.load(_shards(root)[0], allow_pickle=False) as z:
        has_camera = "K" in z.files and "rotation" in z.files
    if has_camera:
        arr.update(_read_shards(root, ("K", "rotation"), limit))
    if np.any(np.abs(arr["expression"]) > 0) and not allow_expressions:
        raise ValueError(f"{root} renders expressions; the evaluation needs neutral ground truth")
    verts = _neutral_vertices(root, arr["vertices"], arr["expression"])
    emb, lms = _cached_rows(root, arr["index"])
    sizes = np.tile(np.array(arr["images"].shape[1:3], np.int64), (len(arr["index"]), 1))
    info = _manifest_info(root)
    info.update({"num_images": int(len(arr["index"])), "num_with_face": int(np.all(np.isfinite(emb), axis=1).sum())})
    data = EvalData(verts.astype(np.float32), emb.astype(np.float32), lms.astype(np.float32), sizes,
                    np.array([f"{root.name}/{i}" for i in arr["index"]]),
                    K=arr["K"].astype(np.float64) if has_camera else None,
                    rotation=arr["rotation"].astype(np.float64) if has_camera else None,
                    expression=arr["expression"].astype(np.float32))
    return data, info
