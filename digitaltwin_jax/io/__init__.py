"""Mesh and image input/output; every writer is atomic (temp file + rename)."""
from digitaltwin_jax.io.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from digitaltwin_jax.io.gltf import read_glb, split_seams, write_glb
from digitaltwin_jax.io.mesh import MeshReadError, read_mesh
from digitaltwin_jax.io.obj import ObjMesh, read_obj, triangulate_polygons, write_obj

__all__ = [
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "read_glb", "split_seams", "write_glb",
    "MeshReadError", "read_mesh", "ObjMesh", "read_obj", "triangulate_polygons", "write_obj",
]
