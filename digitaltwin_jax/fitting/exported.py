"""The Gauss-Newton solve (eq. 1-4) kept on disk as an exported program, so a new process skips tracing it.

JAX's persistent compilation cache (the command line turns it on) keeps compiled executables, but a
new process must still *trace* the solve in Python before it can look its executable up: about
0.3-0.4 s of the command's 2-core wall time for the default terms.  :func:`call` serialises the traced
and lowered solve with :mod:`jax.export` (StableHLO, a ~80 KB file) into an :class:`ExportStore`'s
folder and, in a later process, deserialises it (~2 ms) and calls it; the compilation then hits the
persistent cache as before.  The program is the same StableHLO the plain ``jax.jit`` path lowers, so
results are equal to it (the tests compare both).

A program is keyed by a SHA-256 of everything its trace depends on: the JAX / jaxlib versions and
backend, this package's source code (every ``.py`` file of ``digitaltwin_jax``), the static
arguments (term functions by module and name, frozen dataclasses by their fields) and the arguments'
tree structure, shapes and dtypes.  Static arguments that have no stable description (a user's own
term function, a lambda, a closure) are not stored: that call takes the plain ``jax.jit`` path, which
gives the same result; nothing is silently different.  A file that cannot be read is rewritten, with a
warning.

The same folder keeps the fit's per-topology constants that take a noticeable time to compute
(:func:`arrays`: the corrective field's condensed system, ~0.2 s at 2,900 vertices), as ``.npz``
files keyed by a SHA-256 of the package sources and the inputs' bytes.  File names carry a tag of
the package sources (``program-<tag>-<key>.jaxexport``, ``<kind>-<tag>-<key>.npz``); after each write,
files another version of the code wrote more than a day ago are deleted
(:func:`~digitaltwin_jax.io.cachedir.prune_other_versions`).

The store is an explicit object, like :class:`~digitaltwin_jax.texture.cache.TextureCache`:
:func:`shared_store` is the one the fit uses, off (``directory=None``) unless the application sets a
folder (the command line sets ``$DIGITALTWIN_CACHE_DIR/exported``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import threading
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jaxlib
import numpy as np

from digitaltwin_jax.io.atomic import atomic_write_bytes

__all__ = ["ExportStore", "arrays", "call", "describe_static", "shared_store"]

_FORMAT = 1  # bump when the file layout or the key changes
_PACKAGE = "digitaltwin_jax"


@dataclasses.dataclass
class ExportStore:
    """Where exported programs live: ``directory`` (None: off) and this process's deserialised ones.

    Attributes:
      directory: folder of the ``<key>.jaxexport`` files (created on first write), or None.
      written, loaded: how many programs this store exported / read from disk (for reports and tests).
    """

    directory: Path | None = None
    written: int = 0
    loaded: int = 0
    _memo: dict = dataclasses.field(default_factory=dict, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def clear_memory(self) -> None:
        """Forget this process's deserialised programs (the files stay)."""
        with self._lock:
            self._memo.clear()


_SHARED = ExportStore()


def shared_store() -> ExportStore:
    """The process's store that :func:`~digitaltwin_jax.fitting.fit` uses."""
    return _SHARED


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """SHA-256 of this package's Python sources (relative path and bytes of every ``.py`` file)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def describe_static(obj) -> str | None:
    """A text that names ``obj`` the same way in every process, or None where there is none we trust.

    Plain values by ``repr``; tuples, lists and dicts element by element; functions defined at module
    level in this package by module and qualified name; this package's dataclass instances by class
    and fields.  Anything else (a user's function, a lambda, a closure, an object without such a
    description) gives None.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, (tuple, list)):
        parts = [describe_static(o) for o in obj]
        return None if None in parts else f"{type(obj).__name__}({','.join(parts)})"
    if isinstance(obj, dict):
        items = [(describe_static(k), describe_static(v)) for k, v in sorted(obj.items(), key=lambda kv: repr(kv[0]))]
        return None if any(None in kv for kv in items) else "dict(" + ",".join(f"{k}:{v}" for k, v in items) + ")"
    if isinstance(obj, types.FunctionType):
        name = obj.__qualname__
        own = obj.__module__.split(".")[0] == _PACKAGE
        return f"{obj.__module__}.{name}" if own and "<" not in name else None
    cls = type(obj)
    if dataclasses.is_dataclass(obj) and cls.__module__.split(".")[0] == _PACKAGE:
        parts = [describe_static(getattr(obj, f.name)) for f in dataclasses.fields(obj)]
        return None if None in parts else f"{cls.__module__}.{cls.__qualname__}({','.join(parts)})"
    return None


def _key(args, statics) -> tuple[str | None, list, Any]:
    """``(key or None, leaves, treedef)`` of a call."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    static = describe_static(statics)
    if static is None:
        return None, leaves, treedef
    avals = [(tuple(np.shape(a)), str(a.dtype if hasattr(a, "dtype") else np.result_type(a)),
              bool(getattr(a, "weak_type", False))) for a in leaves]
    text = repr((
        _FORMAT, jax.__version__, jaxlib.__version__,
        jax.default_backend(), [d.device_kind for d in jax.local_devices()[:1]], bool(jax.config.jax_enable_x64),
        _source_digest(), static, str(treedef), avals,
    ))
    if " at 0x" in text:  # an object address in the tree's metadata: not the same in the next process
        return None, leaves, treedef
    return hashlib.sha256(text.encode()).hexdigest(), leaves, treedef


def _tag() -> str:
    """The version tag in file names: the first 16 hex digits of the package sources' digest."""
    return _source_digest()[:16]


def _written(store: ExportStore, family: str, suffix: str, pattern: str | None = None) -> None:
    """After a write: count it and drop other code versions' files of ``family`` (io.cachedir)."""
    from digitaltwin_jax.io.cachedir import prune_other_versions

    store.written += 1
    prune_other_versions(store.directory, family, _tag(), suffix, pattern=pattern)


def _load_or_export(store: ExportStore, key: str, fn: Callable, leaves, treedef):
    path = Path(store.directory) / f"program-{_tag()}-{key}.jaxexport"
    if path.is_file():
        try:
            exp = jax.export.deserialize(bytearray(path.read_bytes()))
            store.loaded += 1
            return exp
        except Exception as exc:  # noqa: BLE001 - a damaged file is rewritten
            warnings.warn(f"exported program {path} could not be read ({exc}); exporting it again", stacklevel=3)

    def flat(*xs):
        return fn(*jax.tree_util.tree_unflatten(treedef, xs))

    exp = jax.export.export(jax.jit(flat))(*leaves)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, exp.serialize())
        # every *.jaxexport of the folder: before the tags the names were <key>.jaxexport
        _written(store, "program", ".jaxexport", pattern="*.jaxexport")
    except OSError as exc:
        warnings.warn(f"could not keep the exported program in {path.parent} ({exc}); the next process traces again", stacklevel=3)
    return exp


def call(fn: Callable, args: tuple, statics, store: ExportStore | None = None):
    """``fn(*args)`` through an exported program of ``store`` (default :func:`shared_store`).

    Args:
      fn: a function of ``args`` (closing over ``statics`` only) that JAX can trace, returning a
        pytree of arrays in Python containers (dicts, tuples, lists); typically built from jitted
        functions, so the plain path reuses their compilation.
      args: a tuple pytree of arrays (the traced arguments).
      statics: everything else ``fn`` depends on, described by :func:`describe_static`.
      store: the store; when its ``directory`` is None, or ``statics`` has no stable description,
        this is ``fn(*args)``.

    Returns:
      ``fn(*args)``'s pytree.
    """
    store = _SHARED if store is None else store
    if store.directory is None:
        return fn(*args)
    key, leaves, treedef = _key(args, statics)
    if key is None:
        return fn(*args)
    with store._lock:
        runner = store._memo.get(key)
        if runner is None:
            runner = jax.jit(_load_or_export(store, key, fn, leaves, treedef).call)
            store._memo[key] = runner
    return runner(*leaves)


def arrays(kind: str, inputs, make: Callable[[], dict], store: ExportStore | None = None) -> dict:
    """``make()`` -- a dict of NumPy arrays, a pure function of ``inputs`` -- or its copy on disk.

    Args:
      kind: a name for the file (``<kind>-<key>.npz``).
      inputs: what ``make`` depends on besides this package's code: arrays (hashed by dtype, shape and
        bytes), numbers and strings, in a tuple or list.
      make: computes the arrays (called when the store is off, or the file is absent or unreadable).
      store: the store (default :func:`shared_store`); with no ``directory`` this is ``make()``.

    Returns:
      ``{name: np.ndarray}``; the file is written atomically; a folder that cannot be written only
      costs the time (a warning says so), an unreadable file is recomputed and rewritten.
    """
    store = _SHARED if store is None else store
    if store.directory is None:
        return make()
    h = hashlib.sha256(repr((_FORMAT, kind, _source_digest())).encode())
    for x in inputs:
        a = np.asarray(x)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    path = Path(store.directory) / f"{kind}-{_tag()}-{h.hexdigest()[:40]}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
        store.loaded += 1
        return out
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"cached arrays {path} could not be read ({exc}); computing them again", stacklevel=2)
    out = make()
    buf = io.BytesIO()
    np.savez(buf, **out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        _written(store, kind, ".npz")
    except OSError as exc:
        warnings.warn(f"could not keep {kind} arrays in {path.parent} ({exc}); the next process computes them again",
                      stacklevel=2)
    return out
