"""The exceptions a user of the avatar pipeline handles, gathered in one place.

* :class:`ImageReadError` -- unreadable, truncated or non-image file (from :mod:`digitaltwin_jax.io.images`).
* :class:`NoFaceError`, :class:`FaceTooSmallError` -- the photo cannot be used (from the front end).
* :class:`FitError` -- the non-rigid fit could not produce a valid result (degenerate landmarks,
  non-finite values).
All derive from ``ValueError``.
"""
from __future__ import annotations

from digitaltwin_jax.frontend.types import FaceTooSmallError, FrontendError, NoFaceError
from digitaltwin_jax.io.images import ImageReadError


class FitError(ValueError):
    """The fit failed: degenerate or non-finite input landmarks, or a non-finite solution."""


__all__ = ["ImageReadError", "FrontendError", "NoFaceError", "FaceTooSmallError", "FitError"]
