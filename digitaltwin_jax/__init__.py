"""digitaltwin_jax: JAX differentiable geometry for single-photo 3D head avatars.

Implements Wang et al., "Digital Twin: Acquiring High-Fidelity 3D Avatar from a Single Image".
Units are millimetres; arrays are float32 unless a function says otherwise.

The public names below are imported on first use (PEP 562 ``__getattr__``), so that
``import digitaltwin_jax`` (and ``digitaltwin --help``) does not import JAX.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from digitaltwin_jax._lazy import lazy_attributes

if TYPE_CHECKING:  # for type checkers and tests/test_layering.py; at run time see __getattr__
    from digitaltwin_jax.model.head_model import HeadModel, head_shape, load_head_model

__version__ = "0.1.0"
__all__ = ["HeadModel", "head_shape", "load_head_model", "__version__"]

_LAZY = {"HeadModel": "digitaltwin_jax.model.head_model", "head_shape": "digitaltwin_jax.model.head_model",
         "load_head_model": "digitaltwin_jax.model.head_model"}


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
