"""digitaltwin_jax: JAX differentiable geometry for single-photo 3D head avatars.

Implements Wang et al., "Digital Twin: Acquiring High-Fidelity 3D Avatar from a Single Image".
Units are millimetres; arrays are float32 unless a function says otherwise.

The public names below are imported on first use (PEP 562 ``__getattr__``), so that
``import digitaltwin_jax`` (and ``digitaltwin --help``) does not import JAX.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and tests/test_layering.py; at run time see __getattr__
    from digitaltwin_jax.model.head_model import HeadModel, head_shape, load_head_model

__version__ = "0.1.0"
__all__ = ["HeadModel", "head_shape", "load_head_model", "__version__"]

_LAZY = {"HeadModel": "digitaltwin_jax.model.head_model", "head_shape": "digitaltwin_jax.model.head_model",
         "load_head_model": "digitaltwin_jax.model.head_model"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'digitaltwin_jax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
