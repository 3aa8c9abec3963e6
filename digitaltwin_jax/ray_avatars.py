"""``digitaltwin avatar --batch ... --ray``: one avatar folder per photo, made on Ray actors.

Each actor runs the worker initialiser it is given (the command line passes its persistent
compilation cache setting), loads the head model once, and then calls
:func:`digitaltwin_jax.pipeline.reconstruct_file` -- the function of the local path -- photo after
photo; JAX compiles the solver on the actor's first photo and reuses it (and, through the shared
persistent cache, later actors load it instead of compiling).  Avatars are therefore the ones the
local path writes (the same code on the same inputs).

Resume: :func:`digitaltwin_jax.pipeline.write_avatar` writes a temporary folder and renames it, so a
killed worker or driver leaves whole avatar folders only; the driver skips photos whose folder holds
``report.json``.  A photo's exception is returned (not raised) and recorded; a worker that dies is
restarted and its photo retried once (:mod:`digitaltwin_jax.distributed.engine`).
"""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Callable

from digitaltwin_jax.distributed.engine import MapConfig, map_items
from digitaltwin_jax.pipeline import AvatarConfig

__all__ = ["AvatarSetup", "avatars_on_ray"]


@dataclasses.dataclass(frozen=True)
class AvatarSetup:
    """Per-actor setup: ``AvatarSetup(config, overwrite, init)()`` -> ``(photo, outdir) -> outcome``.

    The outcome is ``("ok", summary dict)`` or ``("error", (class, args, attributes))`` (the driver
    rebuilds the exception and maps it to the command's exit code; one that cannot travel becomes a
    RuntimeError with its message).
    """

    config: AvatarConfig
    overwrite: bool = False
    init: Callable[[], object] | None = None

    def __call__(self):
        from digitaltwin_jax.model.head_model import load_head_model
        from digitaltwin_jax.pipeline import reconstruct_file

        if self.init is not None:
            self.init()
        load_head_model(self.config.resolution)  # read the asset once per worker

        def one(job):
            photo, outdir = job
            try:
                return "ok", reconstruct_file(photo, outdir, config=self.config, overwrite=self.overwrite)
            except Exception as exc:  # noqa: BLE001 - returned to the driver, the batch goes on
                return "error", _portable(exc)

        return one


def _portable(exc: BaseException) -> tuple:
    """``(class, args, attributes)`` of an exception: picklable even when its ``__init__`` takes other
    arguments than ``args`` (pickle would call ``cls(*args)``; e.g. ``ImageReadError(path, reason)``)."""
    try:
        pickle.loads(pickle.dumps((type(exc), exc.args, dict(vars(exc)))))
        return type(exc), exc.args, dict(vars(exc))
    except Exception:  # noqa: BLE001 - a class or attribute that does not travel
        return RuntimeError, (f"{type(exc).__name__}: {exc}",), {}


def _rebuild(portable: tuple) -> BaseException:
    """The exception of :func:`_portable`, built without calling its ``__init__``."""
    cls, args, attrs = portable
    exc = cls.__new__(cls, *args)
    exc.args = tuple(args)
    exc.__dict__.update(attrs)
    return exc


def avatars_on_ray(jobs, config: AvatarConfig = AvatarConfig(), *, overwrite: bool = False,
                   address: str = "local", workers: int | None = None, progress: bool = True,
                   init: Callable[[], object] | None = None) -> dict:
    """Make the avatars of ``jobs`` on Ray.

    Args:
      jobs: ``[(photo path, output folder), ...]`` (on several nodes: paths every node sees).
      config: :class:`~digitaltwin_jax.pipeline.AvatarConfig` of every photo.
      overwrite: replace existing output folders.
      address: ``"local"`` or a Ray cluster address (:func:`digitaltwin_jax.distributed.cluster.connect`).
      workers: actors (default one per CPU of the cluster).
      progress: a progress bar over photos.
      init: picklable zero-argument callable each worker runs first (e.g. enable a compilation cache).

    Returns:
      ``{photo path (str): ("ok", summary) | ("error", exception)}`` for every job; a job whose worker
      died twice is ``("error", RuntimeError("worker died: ..."))``.
    """
    from digitaltwin_jax.distributed.cluster import connect

    ray = connect(address)
    jobs = [(str(p), str(o)) for p, o in jobs]
    res = map_items(ray, AvatarSetup(config, overwrite, init), jobs, keys=[p for p, _ in jobs],
                    config=MapConfig(workers=workers), progress=progress, desc="avatars", unit="photo")
    out = {k: (status, _rebuild(v) if status == "error" else v) for k, (status, v) in res.results.items()}
    for key, failure in res.failed.items():
        out[key] = ("error", RuntimeError(failure["error"]))
    return {p: out[p] for p, _ in jobs}
