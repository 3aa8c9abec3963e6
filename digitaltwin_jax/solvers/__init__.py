"""Nonlinear least-squares solvers (paper section 3.4, eq. 4): damped Gauss-Newton as one call
(:func:`gauss_newton`) or as ``init / step / terminate / result`` (:class:`GaussNewton`)."""
from digitaltwin_jax.solvers.gauss_newton import (
    GaussNewton,
    GaussNewtonConfig,
    GaussNewtonResult,
    GaussNewtonState,
    StructuredResidual,
    gauss_newton,
)

__all__ = ["GaussNewton", "GaussNewtonConfig", "GaussNewtonResult", "GaussNewtonState", "StructuredResidual",
           "gauss_newton"]
