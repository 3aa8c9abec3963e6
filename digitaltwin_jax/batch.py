"""``digitaltwin avatar --batch`` on this machine: worker processes that each load and compile once.

Each worker is a fresh (``spawn``) Python process that runs the same per-worker setup as the Ray
actors, :class:`digitaltwin_jax.ray_avatars.AvatarSetup`: the command's initialiser (the persistent
compilation cache), the head model read once, then :func:`digitaltwin_jax.pipeline.reconstruct_file`
photo after photo -- so JAX compiles (or loads from the persistent cache) once per worker, and the
texture stage's photo-independent pieces (:func:`digitaltwin_jax.texture.cache.shared_cache`) are
computed once per worker.

* Order-independent: one photo makes one output folder, from the photo and the configuration only
  (every random choice is seeded by ``AvatarConfig.seed``), so which worker takes it and when does not
  change a byte.
* Resumable: :func:`~digitaltwin_jax.pipeline.write_avatar` writes a temporary folder and renames it,
  so an interrupted batch leaves whole avatar folders only; the caller skips folders holding
  ``report.json``.
* Failures: a photo's exception is returned (as ``("error", exception)``), the batch goes on; if a
  worker process dies (killed, out of memory) the photos not finished by then are returned as
  ``RuntimeError("worker process died ...")`` and a rerun resumes them.
* Threads: the workers already fill the CPUs, so each runs OpenBLAS single-threaded
  (``OPENBLAS_NUM_THREADS=1`` unless the caller set it; set before NumPy loads in the worker).  Two
  workers with two BLAS threads each on two cores thrash; the files are the same either way (the
  tests compare a two-worker batch byte for byte with one process).
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

# nothing here imports NumPy at module level: a worker sets its thread environment first (_init_worker)

__all__ = ["default_workers", "avatars_local", "WORKER_ENV"]

#: Environment a worker process sets (where not set already) before NumPy loads.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1"}

# The photo function of a worker process, set once by _init_worker inside that process (each worker
# process has its own; the driver never sets it).
_WORKER_ONE = None


def _init_worker(setup_blob: bytes, env: dict) -> None:
    global _WORKER_ONE
    for k, v in env.items():
        os.environ.setdefault(k, v)
    _WORKER_ONE = pickle.loads(setup_blob)()  # unpickling imports the pipeline (NumPy, JAX)


def _run(job: tuple) -> tuple:
    return job[0], _WORKER_ONE(job)


def default_workers(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` photos: one per CPU this process may use, at most one per photo."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, int(n_jobs)))


def avatars_local(jobs, config=None, *, overwrite: bool = False,
                  workers: int | None = None, init: Callable[[], object] | None = None,
                  progress: bool = True) -> dict:
    """Make the avatars of ``jobs`` in worker processes on this machine.

    Args:
      jobs: ``[(photo path, output folder), ...]``.
      config: :class:`~digitaltwin_jax.pipeline.AvatarConfig` of every photo (default ``AvatarConfig()``).
      overwrite: replace existing output folders.
      workers: worker processes (default :func:`default_workers`); 1 runs in this process.
      init: picklable zero-argument callable each worker runs first (e.g. enable a compilation cache).
      progress: a progress bar over photos (tqdm, on stderr).

    Returns:
      ``{photo path (str): ("ok", summary dict) | ("error", exception)}`` for every job, in the order of
      ``jobs`` (the same contract as :func:`digitaltwin_jax.ray_avatars.avatars_on_ray`).
    """
    from tqdm import tqdm

    from digitaltwin_jax.pipeline import AvatarConfig
    from digitaltwin_jax.ray_avatars import AvatarSetup, _portable, _rebuild

    config = AvatarConfig() if config is None else config
    jobs = [(str(p), str(o)) for p, o in jobs]
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    n = default_workers(len(jobs)) if workers is None else int(workers)
    setup = AvatarSetup(config, overwrite, init)
    results: dict = {}
    bar = tqdm(total=len(jobs), desc="avatars", unit="photo", disable=not progress)

    def record(photo, outcome):
        status, value = outcome
        results[photo] = (status, _rebuild(value) if status == "error" else value)
        bar.update(1)  # failures are listed by the caller (the command prints and records them)

    try:
        if n == 1 or len(jobs) <= 1:
            one = setup()
            for job in jobs:
                record(job[0], one(job))
        else:
            ctx = multiprocessing.get_context("spawn")  # JAX and fork do not mix (threads)
            with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                                     initargs=(pickle.dumps(setup), WORKER_ENV)) as pool:
                futures = [pool.submit(_run, job) for job in jobs]
                try:
                    for fut in as_completed(futures):
                        photo, outcome = fut.result()
                        record(photo, outcome)
                except BrokenProcessPool as exc:
                    for photo, _ in jobs:
                        if photo not in results:
                            record(photo, ("error", _portable(RuntimeError(
                                f"worker process died before this photo was finished ({exc}); rerun to resume"))))
    finally:
        bar.close()
    return {p: results[p] for p, _ in jobs}
