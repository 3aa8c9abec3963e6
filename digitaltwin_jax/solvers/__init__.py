"""Nonlinear least-squares solvers (paper section 3.4, eq. 4)."""
from digitaltwin_jax.solvers.gauss_newton import GaussNewtonConfig, GaussNewtonResult, gauss_newton

__all__ = ["GaussNewtonConfig", "GaussNewtonResult", "gauss_newton"]
