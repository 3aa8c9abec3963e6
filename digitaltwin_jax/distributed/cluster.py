"""Connecting to Ray: ``"local"`` starts a private single-machine instance, anything else is a
cluster address (``"auto"``, ``"HOST:6379"`` of a ``ray start --head``, or ``"ray://HOST:10001"``).

Ray is an optional dependency (extra ``distributed``); :func:`require_ray` turns its absence into one
clear ImportError naming the install command.
"""
from __future__ import annotations

import os

import os

__all__ = ["INSTALL_HINT", "ray_available", "require_ray", "connect", "blas_threads", "cluster_cpus"]

INSTALL_HINT = 'pip install "digitaltwin-jax[distributed]"  (from a checkout: pip install ".[distributed]")'


def ray_available() -> bool:
    """Whether ``import ray`` works."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def require_ray():
    """The ``ray`` module, or ImportError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def connect(address: str = "local", *, num_cpus: int | None = None):
    """Initialise Ray once per process and return the ``ray`` module.

    Args:
      address: ``"local"`` (a private instance on this machine with ``num_cpus`` CPUs, default all)
        or a cluster address as ``ray.init(address=...)`` takes it.
      num_cpus: CPUs of a local instance (ignored for a cluster: its nodes declare their own).

    An already initialised Ray (e.g. a test fixture, or a notebook) is reused as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if not address:
        raise ValueError("--ray needs 'local' or a cluster address (HOST:PORT, ray://HOST:PORT, auto)")
    common = dict(include_dashboard=False, log_to_driver=True, configure_logging=False,
                  runtime_env={"env_vars": {"OMP_NUM_THREADS": blas_threads()}})
    if address == "local":
        ray.init(num_cpus=num_cpus, **common)
    else:
        ray.init(address=address, **common)
    return ray


def blas_threads() -> str:
    """The BLAS / OpenMP thread count of this (driver) process, as ``OMP_NUM_THREADS`` for workers.

    Ray would give a one-CPU worker ``OMP_NUM_THREADS=1``; but numpy's BLAS sums in another order
    with another thread count (a synthetic head's vertices moved by 1 ulp), and a worker must compute
    exactly what the local path computes.  So workers get the driver's setting: ``OMP_NUM_THREADS``
    when set, else the CPUs this process may use (OpenBLAS's default).
    """
    return os.environ.get("OMP_NUM_THREADS") or str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else (os.cpu_count() or 1))


def cluster_cpus(ray) -> int:
    """CPUs the connected cluster declares (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
