"""Reading common mesh formats through meshio (PLY, STL, OFF, VTK, OBJ without UVs, ...).

Use :func:`digitaltwin_jax.io.obj.read_obj` for OBJ files whose UV layout has seams: meshio keeps
one index per corner and cannot represent them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_mesh", "MeshReadError"]


class MeshReadError(ValueError):
    """A mesh file could not be read or holds no triangles."""


def read_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh.

    Args:
      path: any format meshio reads.

    Returns:
      ``(vertices (V, 3) float64, faces (F, 3) int64)``; quads are split into two triangles.
    Raises:
      MeshReadError naming the file when it is missing, unreadable, or has no triangles/quads, or when
      faces are degenerate (repeated vertex indices) or vertices are not finite.
    """
    import meshio

    path = Path(path)
    if not path.exists():
        raise MeshReadError(f"{path}: no such file")
    try:
        m = meshio.read(path)
    except (Exception, SystemExit) as e:  # meshio raises many types, and calls sys.exit on some
        raise MeshReadError(f"{path}: cannot read mesh ({type(e).__name__}: {e})") from None
    tris = []
    for block in m.cells:
        if block.type == "triangle":
            tris.append(block.data)
        elif block.type == "quad":
            q = block.data
            tris.append(np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]]))
    if not tris:
        raise MeshReadError(f"{path}: no triangle or quad faces")
    faces = np.concatenate(tris).astype(np.int64)
    vertices = np.asarray(m.points, dtype=np.float64)
    if vertices.shape[1] == 2:
        vertices = np.concatenate([vertices, np.zeros((len(vertices), 1))], axis=1)
    if not np.all(np.isfinite(vertices)):
        raise MeshReadError(f"{path}: vertices contain NaN or inf")
    bad = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    if bad.any():
        raise MeshReadError(f"{path}: {int(bad.sum())} degenerate faces (a vertex repeated), e.g. face {int(np.argmax(bad))}")
    return vertices, faces
