"""Shape populations for the synthetic renders from :mod:`digitaltwin_jax.geometry.sampling` (paper
section 3.2 "Shape Augmentation": DR-feature sampling; supplementary 4.4: C-PCA and No-Aug).

The population is built once per data set (deterministic in the data-set seed), saved as
``population.npz`` in the output folder and loaded by every worker.
"""
from __future__ import annotations

__all__ = ["population_source"]


def population_source(model, config, out_dir=None):
    """``(source, subject_albedo)`` for ``config.sampler`` in ``("dr", "cpca", "noaug")``."""
    try:
        from digitaltwin_jax.geometry import sampling  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"the {config.sampler!r} sampler needs digitaltwin_jax.geometry.sampling, which is not "
            "available; use --sampler gaussian"
        ) from e
    raise NotImplementedError("population sampling is not wired yet")
