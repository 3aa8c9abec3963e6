"""Photo-independent pieces of the texture stage, computed once per head model and texture size.

:func:`~.pipeline.build_texture` spends about half its time on work that depends only on the model's
UV layout and the texture size, not on the photo: rasterising the UV layout (:func:`~.uv.uv_sampling`),
finding the texel pairs across UV seams (:func:`~.seams.seam_pairs`), the chart padding pattern
(:func:`~.seams.dilation_plan`) and baking a procedural bank
entry (:func:`~.procedural.bake_procedural`).  A :class:`TextureCache` keeps those results so a
process that makes many avatars (the command's ``--batch`` workers, a server) computes them once.

The cache is an explicit object: pass the same instance to every :func:`~.pipeline.build_texture`
call that should share it.  The avatar pipeline's default texture stage uses :func:`shared_cache`, one
instance per process (a memo of pure functions, like ``load_head_model``'s ``lru_cache``: it changes no
result, only the time; about 90 MB at 2048 texels).  Cached arrays are returned
read-only; results are identical to the uncached computation (the same functions, the same inputs).
Entries are keyed by the identity of the model (a reference is kept so an identity is never reused
while cached), the sizes, and a procedural bank entry's parameters (a photo entry's map identity).

With a ``directory`` the pieces are also kept on disk (``.npz``, written atomically), keyed by a
SHA-256 of the model's arrays, the sizes and a format version, so a new process (the command line)
loads them instead of recomputing (about 1 s at 2048; ~70 MB per texture size on disk).  A file that
cannot be read is recomputed and rewritten.  Procedural bank entries are kept on disk by their
parameters; photo entries only in memory.  File names carry the format (``<kind>-v<format>-<key>.npz``);
after a write, files of the same kind and another format older than a day are deleted
(:func:`~digitaltwin_jax.io.cachedir.prune_other_versions`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from digitaltwin_jax.texture.seams import DilationPlan, dilation_plan, seam_pairs
from digitaltwin_jax.texture.uv import UVSampling, uv_sampling

__all__ = ["TextureCache", "shared_cache"]

_DISK_FORMAT = 2  # bump when a cached function's output or the file layout changes

# flat texel indices are kept as int32 on disk (a 2048 map has 4.2M texels; half the bytes to read
# back) and are int64 again in memory, as the functions return them
_INDEX_FIELDS = {"sampling": ("texels",), "dilation": ("fill", "source", "rest")}


def _to_arrays(kind: str, x) -> dict:
    if isinstance(x, np.ndarray):
        return {"array": x}
    out = {f.name: np.asarray(getattr(x, f.name)) for f in dataclasses.fields(x)}
    for name in _INDEX_FIELDS.get(kind, ()):
        a = out[name]
        if a.size == 0 or int(a.max()) < 2 ** 31:
            out[name] = a.astype(np.int32)
    return out


def _from_arrays(kind: str, d) -> object:
    def index(name):
        return d[name].astype(np.int64)

    if kind == "sampling":
        return UVSampling(size=int(d["size"]), texels=index("texels"), face=d["face"], bary=d["bary"],
                          chart_mask=d["chart_mask"])
    if kind == "dilation":
        return DilationPlan(shape=tuple(int(v) for v in d["shape"]), fill=index("fill"), source=index("source"),
                            rest=index("rest"))
    return d["array"]


def _read_only(x):
    if isinstance(x, np.ndarray):
        x.setflags(write=False)
    elif isinstance(x, UVSampling):
        for a in (x.texels, x.face, x.bary, x.chart_mask):
            a.setflags(write=False)
    elif isinstance(x, DilationPlan):
        for a in (x.fill, x.source, x.rest):
            a.setflags(write=False)
    return x


class TextureCache:
    """Per-process store of :func:`uv_sampling`, :func:`seam_pairs` and baked bank textures.

    Args:
      max_entries: entries kept (least recently used dropped first); one avatar at one size needs 3.
    """

    def __init__(self, max_entries: int = 16, directory=None):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = int(max_entries)
        self.directory = None if directory is None else Path(directory)
        self._store: dict = {}
        self._digests: dict = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def directory(self) -> Path | None:
        """Folder of the on-disk copies, or None (memory only)."""
        return self._directory

    @directory.setter
    def directory(self, value) -> None:
        self._directory = None if value is None else Path(value)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()

    def model_digest(self, model) -> str:
        """SHA-256 of every field of ``model`` (arrays by content), memoised per model object."""
        hit = self._digests.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        h = hashlib.sha256()
        fields = dataclasses.fields(model) if dataclasses.is_dataclass(model) else ()
        for name in sorted(f.name for f in fields) or ("uvs", "uv_faces", "vertices", "faces"):
            v = getattr(model, name, None)
            h.update(name.encode())
            if hasattr(v, "shape") and hasattr(v, "dtype"):
                a = np.ascontiguousarray(np.asarray(v))
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
            else:
                h.update(repr(v).encode())
        self._digests[id(model)] = (model, h.hexdigest())
        return self._digests[id(model)][1]

    def _disk(self, kind: str, disk_key, make: Callable):
        """``make()``, or its copy from / saved to ``directory`` (see the module docstring)."""
        if self.directory is None or disk_key is None:
            return make()
        name = hashlib.sha256(repr((_DISK_FORMAT, kind, disk_key)).encode()).hexdigest()[:32]
        path = self.directory / f"{kind}-v{_DISK_FORMAT}-{name}.npz"
        try:
            with np.load(path, allow_pickle=False) as d:
                return _from_arrays(kind, d)
        except (OSError, ValueError, KeyError):  # absent or unreadable: compute and (re)write
            pass
        value = make()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **_to_arrays(kind, value))
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            from digitaltwin_jax.io.cachedir import prune_other_versions

            prune_other_versions(self.directory, kind, f"v{_DISK_FORMAT}", ".npz")  # older formats' files
        except OSError:  # a read-only or full cache folder only costs time
            pass
        return value

    def _get(self, key: tuple, owners: tuple, make: Callable, disk_key=None):
        with self._lock:
            hit = self._store.pop(key, None)
            if hit is not None:
                self._store[key] = hit  # most recently used last
                self.hits += 1
                return hit[1]
        value = _read_only(self._disk(key[0], disk_key, make))
        with self._lock:
            self.misses += 1
            self._store[key] = (owners, value)  # owners keep the keyed objects (and their ids) alive
            while len(self._store) > self.max_entries:
                self._store.pop(next(iter(self._store)))
        return value

    def sampling(self, model, size: int) -> UVSampling:
        """``uv_sampling(model.uvs, model.uv_faces, size)`` (read-only arrays)."""
        size = int(size)
        return self._get(("sampling", id(model), size), (model,),
                         lambda: uv_sampling(model.uvs, model.uv_faces, size), self._model_key(model, size))

    def seam_pairs(self, model, size: int) -> np.ndarray:
        """``seam_pairs(self.sampling(model, size), model.vertices, model.faces)``: ``(P, 2) int64``."""
        size = int(size)
        return self._get(("seams", id(model), size), (model,),
                         lambda: seam_pairs(self.sampling(model, size), model.vertices, model.faces),
                         self._model_key(model, size))

    def dilation(self, model, size: int, iterations: int) -> DilationPlan:
        """``dilation_plan(self.sampling(model, size).chart_mask, iterations)`` (chart padding)."""
        size = int(size)
        return self._get(("dilation", id(model), size, int(iterations)), (model,),
                         lambda: dilation_plan(self.sampling(model, size).chart_mask, int(iterations)),
                         self._model_key(model, size, int(iterations)))

    def bank_texture(self, bank, index: int, model, size: int, gen_size: int) -> np.ndarray:
        """``bank.texture(index, model, size, gen_size=gen_size)``: ``(size, size, 3) float32``, read-only."""
        entry = bank.entries[index]
        # a procedural entry is a pure function of its (hashable, frozen) parameters: key by value, so
        # that a freshly built default bank hits too; a photo entry by the identity of its map
        what = ("params", entry.params) if entry.params is not None else ("map", id(entry.texture))
        disk = None if entry.params is None else self._model_key(model, int(size), int(gen_size), repr(entry.params))
        return self._get(("bank", what, id(model), int(size), int(gen_size)), (entry, model),
                         lambda: bank.texture(index, model, int(size), gen_size=int(gen_size)), disk)

    def _model_key(self, model, *rest):
        return None if self.directory is None else (self.model_digest(model), *rest)


@functools.lru_cache(maxsize=1)
def shared_cache() -> TextureCache:
    """The process-wide :class:`TextureCache` of the avatar pipeline's default texture stage (memory
    only unless an application sets its ``directory``, as the command line does)."""
    return TextureCache()
