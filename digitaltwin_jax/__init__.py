"""digitaltwin_jax: JAX differentiable geometry for single-photo 3D head avatars.

Implements Wang et al., "Digital Twin: Acquiring High-Fidelity 3D Avatar from a Single Image".
Units are millimetres; arrays are float32 unless a function says otherwise.
"""
from digitaltwin_jax.model.head_model import HeadModel, head_shape, load_head_model

__version__ = "0.1.0"
__all__ = ["HeadModel", "head_shape", "load_head_model", "__version__"]
