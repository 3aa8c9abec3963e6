"""Extra textured meshes written beside the head (e.g. the eyeballs): one material and texture each.

:func:`~digitaltwin_jax.io.obj.write_obj` writes each part as its own ``o`` group with its own
``usemtl`` and MTL entry; :func:`~digitaltwin_jax.io.gltf.write_glb` as its own node, mesh,
material, texture and image.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["MeshPart", "check_part"]


@dataclasses.dataclass(frozen=True)
class MeshPart:
    """A textured triangle mesh in the head's frame and units.

    Attributes:
      name: object / mesh / material name (letters, digits, ``_``).
      vertices: ``(P, 3) float``; faces ``(G, 3) int`` (0-based into ``vertices``).
      uvs: ``(T, 2) float`` (OBJ convention, v up); uv_faces ``(G, 3) int`` into ``uvs``.
      texture_name: file name of its diffuse map for the OBJ's MTL (``map_Kd``), or None.
      texture_png: PNG bytes of its diffuse map for the GLB, or None.
      roughness: glTF ``roughnessFactor`` of its material.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    texture_name: str | None = None
    texture_png: bytes | None = None
    roughness: float = 0.5


def check_part(part: MeshPart) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices float64, faces int64, uvs float64, uv_faces int64)`` of ``part``; ValueError naming the
    part and the problem for bad shapes, NaN, out-of-range indices or a bad name."""
    if not (isinstance(part.name, str) and part.name and part.name.replace("_", "").isalnum()):
        raise ValueError(f"mesh part name must be letters, digits and '_', got {part.name!r}")
    v = np.asarray(part.vertices, np.float64)
    f = np.asarray(part.faces, np.int64)
    uv = np.asarray(part.uvs, np.float64)
    uvf = np.asarray(part.uv_faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"part {part.name!r}: vertices must be (P, 3) and faces (G>0, 3), got {v.shape}, {f.shape}")
    if uv.ndim != 2 or uv.shape[1] != 2 or uvf.shape != f.shape:
        raise ValueError(f"part {part.name!r}: uvs must be (T, 2) and uv_faces {f.shape}, got {uv.shape}, {uvf.shape}")
    if not (np.isfinite(v).all() and np.isfinite(uv).all()):
        raise ValueError(f"part {part.name!r}: vertices or uvs contain NaN or inf")
    if f.min() < 0 or f.max() >= len(v) or uvf.min() < 0 or uvf.max() >= len(uv):
        raise ValueError(f"part {part.name!r}: faces or uv_faces index outside their arrays")
    return v, f, uv, uvf
