"""The exceptions a user of the avatar pipeline handles, gathered in one place.

* :class:`ImageReadError` -- unreadable, truncated or non-image file (from :mod:`digitaltwin_jax.io.images`).
* :class:`NoFaceError`, :class:`FaceTooSmallError` -- the photo cannot be used (from the front end).
* :class:`FaceIndexError` -- the requested face index (``--face-index``) is not among the faces found.
* :class:`FitError` -- the non-rigid fit could not produce a valid result (degenerate landmarks,
  non-finite values).
* :class:`OutputError` -- the output folder cannot be written (:class:`OutputExistsError`: it exists
  and overwriting was not asked for; :class:`OutputWriteError`: read-only folder, disk full, a file
  in the way).  Nothing half-written is left behind.
All derive from ``ValueError`` (the two output errors also from ``FileExistsError`` / ``OSError``).
"""
from __future__ import annotations

from digitaltwin_jax.frontend.types import FaceIndexError, FaceTooSmallError, FrontendError, NoFaceError
from digitaltwin_jax.io.images import ImageReadError


class FitError(ValueError):
    """The fit failed: degenerate or non-finite input landmarks, or a non-finite solution."""


class OutputError(ValueError):
    """The avatar could not be written to the requested output folder."""


class OutputExistsError(OutputError, FileExistsError):
    """The output folder exists and overwriting was not requested."""


class OutputWriteError(OutputError, OSError):
    """Writing failed (permission denied, disk full, a file where a folder should be, ...)."""


__all__ = ["ImageReadError", "FrontendError", "NoFaceError", "FaceTooSmallError", "FaceIndexError", "FitError", "OutputError",
           "OutputExistsError", "OutputWriteError"]
