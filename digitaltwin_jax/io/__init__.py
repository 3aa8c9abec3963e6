"""Mesh and image input/output; every writer is atomic (temp file + rename).

The public names are imported on first use (PEP 562 ``__getattr__``): ``io.atomic`` and ``io.images``
stay light (the front end imports them, and runs in a process without JAX, see ``cli``), while the
mesh formats pull in the geometry package (and with it JAX).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from digitaltwin_jax._lazy import lazy_attributes

if TYPE_CHECKING:  # for type checkers and tests/test_layering.py; at run time see __getattr__
    from digitaltwin_jax.io.atomic import atomic_write, atomic_write_bytes, atomic_write_text
    from digitaltwin_jax.io.gltf import read_glb, split_seams, write_glb
    from digitaltwin_jax.io.mesh import MeshReadError, read_mesh
    from digitaltwin_jax.io.obj import ObjMesh, read_obj, triangulate_polygons, write_obj

__all__ = [
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "read_glb", "split_seams", "write_glb",
    "MeshReadError", "read_mesh", "ObjMesh", "read_obj", "triangulate_polygons", "write_obj",
]

_LAZY = {
    **dict.fromkeys(("atomic_write", "atomic_write_bytes", "atomic_write_text"), "digitaltwin_jax.io.atomic"),
    **dict.fromkeys(("read_glb", "split_seams", "write_glb"), "digitaltwin_jax.io.gltf"),
    **dict.fromkeys(("MeshReadError", "read_mesh"), "digitaltwin_jax.io.mesh"),
    **dict.fromkeys(("ObjMesh", "read_obj", "triangulate_polygons", "write_obj"), "digitaltwin_jax.io.obj"),
}


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
