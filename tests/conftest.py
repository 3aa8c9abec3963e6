"""Fixtures shared across test folders."""
import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) for the whole test session, started on first use.

    Skipped when Ray is missing: it is the optional extra ``distributed``
    (``pip install ".[test,distributed]"``, the README's test command).
    """
    ray = pytest.importorskip("ray", reason='Ray is not installed (optional extra: pip install ".[distributed]")')
    if not ray.is_initialized():
        from digitaltwin_jax.distributed.cluster import blas_threads

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": blas_threads()}})
    yield ray
    ray.shutdown()
