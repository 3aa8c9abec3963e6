"""Wavefront OBJ reading and writing with separate UV indices (UV seams are real).

meshio reads OBJ positions and faces but keeps only one index per corner, so a textured mesh whose
UV layout has seams (vertex count != texture-coordinate count, as ICT-FaceKit) loses its UV
topology there.  This small reader keeps ``v`` and ``vt`` index arrays separately; polygons are
triangulated (quads along their shorter diagonal, n-gons as fans).  meshio is used for every other
mesh format (see :mod:`digitaltwin_jax.io.mesh`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write_text
from digitaltwin_jax.io.parts import MeshPart, check_part

__all__ = ["ObjMesh", "read_obj", "write_obj", "triangulate_polygons"]


@dataclasses.dataclass(frozen=True)
class ObjMesh:
    """An OBJ mesh.

    Attributes:
      vertices: ``(V, 3) float64``.
      uvs: ``(T, 2) float64`` (empty ``(0, 2)`` when the file has none).
      polygons: list of ``(n,) int`` vertex-index arrays, one per ``f`` line (0-based).
      uv_polygons: list of ``(n,) int`` uv-index arrays (same lengths), or None when no ``vt`` indices.
    """

    vertices: np.ndarray
    uvs: np.ndarray
    polygons: list
    uv_polygons: list | None

    def triangles(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(faces (F,3) int32, uv_faces (F,3) int32 or None)`` after triangulation."""
        return triangulate_polygons(self.vertices, self.polygons, self.uv_polygons)


def read_obj(path) -> ObjMesh:
    """Read an OBJ file (``v``, ``vt``, ``f`` with ``v``, ``v/vt``, ``v/vt/vn``, ``v//vn`` corners).

    Negative (relative) indices are supported.  Raises ValueError naming the file and line for
    malformed content.
    """
    path = Path(path)
    verts, uvs, polys, uv_polys = [], [], [], []
    has_uv = None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line or line[0] == "#":
                continue
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            try:
                if tag == "v":
                    verts.append((float(parts[1]), float(parts[2]), float(parts[3])))
                elif tag == "vt":
                    uvs.append((float(parts[1]), float(parts[2]) if len(parts) > 2 else 0.0))
                elif tag == "f":
                    if len(parts) < 4:
                        raise ValueError("a face needs at least 3 corners")
                    vi, ti = [], []
                    for corner in parts[1:]:
                        fields = corner.split("/")
                        v = int(fields[0])
                        vi.append(v - 1 if v > 0 else len(verts) + v)
                        if len(fields) > 1 and fields[1]:
                            t = int(fields[1])
                            ti.append(t - 1 if t > 0 else len(uvs) + t)
                    corner_has_uv = len(ti) == len(vi)
                    if ti and not corner_has_uv:
                        raise ValueError("some corners of the face have texture indices and some do not")
                    if has_uv is None:
                        has_uv = corner_has_uv
                    elif has_uv != corner_has_uv:
                        raise ValueError("faces mix corners with and without texture indices")
                    polys.append(np.asarray(vi, dtype=np.int64))
                    if corner_has_uv:
                        uv_polys.append(np.asarray(ti, dtype=np.int64))
            except (ValueError, IndexError) as e:
                raise ValueError(f"{path}:{lineno}: malformed OBJ line {line.strip()!r}: {e}") from None
    vertices = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    uv_arr = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
    for p in polys:
        if p.size and (p.min() < 0 or p.max() >= len(vertices)):
            raise ValueError(f"{path}: face references vertex {int(p.max()) + 1} of {len(vertices)}")
    for p in uv_polys:
        if p.size and (p.min() < 0 or p.max() >= len(uv_arr)):
            raise ValueError(f"{path}: face references texture coordinate {int(p.max()) + 1} of {len(uv_arr)}")
    return ObjMesh(vertices, uv_arr, polys, uv_polys if has_uv else None)


def triangulate_polygons(vertices, polygons, uv_polygons=None):
    """Triangulate polygons: triangles kept, quads split along the shorter diagonal, n-gons fanned.

    Returns ``(faces (F,3) int32, uv_faces (F,3) int32 or None)``; triangle order follows the
    polygon order, orientation is preserved.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces, uv_faces = [], []
    for k, p in enumerate(polygons):
        t = uv_polygons[k] if uv_polygons is not None else None
        n = len(p)
        if n == 3:
            tris = [(0, 1, 2)]
        elif n == 4:
            d02 = np.sum((vertices[p[0]] - vertices[p[2]]) ** 2)
            d13 = np.sum((vertices[p[1]] - vertices[p[3]]) ** 2)
            tris = [(0, 1, 2), (0, 2, 3)] if d02 <= d13 else [(0, 1, 3), (1, 2, 3)]
        else:
            tris = [(0, i, i + 1) for i in range(1, n - 1)]
        for a, b, c in tris:
            faces.append((p[a], p[b], p[c]))
            if t is not None:
                uv_faces.append((t[a], t[b], t[c]))
    f = np.asarray(faces, dtype=np.int32).reshape(-1, 3)
    uf = np.asarray(uv_faces, dtype=np.int32).reshape(-1, 3) if uv_polygons is not None else None
    return f, uf


def write_obj(path, vertices, faces, uvs=None, uv_faces=None, *, mtl_name: str | None = None,
              material: str = "head", texture_name: str | None = None, parts: tuple[MeshPart, ...] = ()) -> None:
    """Write a triangle mesh as OBJ (and an MTL beside it when ``mtl_name`` is given), atomically.

    Args:
      path: ``.obj`` destination.
      vertices: ``(V, 3)`` float.
      faces: ``(F, 3)`` int, 0-based.
      uvs: ``(T, 2)`` float in [0, 1] (v up), optional.
      uv_faces: ``(F, 3)`` int into ``uvs``; required with ``uvs``.
      mtl_name: file name of the MTL to write next to the OBJ (e.g. ``"head.mtl"``).
      material: material name used in ``usemtl``/``newmtl``.
      texture_name: diffuse texture file name referenced by the MTL (``map_Kd``).
      parts: extra meshes (:class:`~digitaltwin_jax.io.parts.MeshPart`, e.g. the eyeballs), each written
        after the head as its own ``o`` object with its own material (named after the part) and
        ``map_Kd``; they need ``mtl_name`` and the head's ``uvs``.  Their vertices follow the head's.
    """
    path = Path(path)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError("vertices contain NaN or inf; refusing to write a broken mesh")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError("faces index outside the vertex array")
    if (uvs is None) != (uv_faces is None):
        raise ValueError("uvs and uv_faces must be given together")
    lines = ["# written by digitaltwin_jax"]
    if mtl_name:
        lines.append(f"mtllib {mtl_name}")
    lines.extend(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices)
    if uvs is not None:
        uvs = np.asarray(uvs, dtype=np.float64)
        uv_faces = np.asarray(uv_faces, dtype=np.int64)
        if uv_faces.shape != faces.shape:
            raise ValueError(f"uv_faces must have the shape of faces {faces.shape}, got {uv_faces.shape}")
        lines.extend(f"vt {u:.6f} {v:.6f}" for u, v in uvs)
    if mtl_name:
        lines.append(f"usemtl {material}")
    if uvs is not None:
        f1, t1 = faces + 1, uv_faces + 1
        lines.extend(
            f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(f1.tolist(), t1.tolist())
        )
    else:
        lines.extend(f"f {a} {b} {c}" for a, b, c in (faces + 1).tolist())
    if parts and (not mtl_name or uvs is None):
        raise ValueError("mesh parts need mtl_name and the head's uvs")
    v_off, t_off, part_mtl = len(vertices), 0 if uvs is None else len(uvs), []
    for part in parts:
        pv, pf, pu, puf = check_part(part)
        lines.append(f"o {part.name}")
        lines.extend(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in pv)
        lines.extend(f"vt {u:.6f} {v:.6f}" for u, v in pu)
        lines.append(f"usemtl {part.name}")
        f1, t1 = pf + 1 + v_off, puf + 1 + t_off
        lines.extend(f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(f1.tolist(), t1.tolist()))
        v_off, t_off = v_off + len(pv), t_off + len(pu)
        part_mtl += ["", f"newmtl {part.name}", "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", "d 1", "illum 1"]
        if part.texture_name:
            part_mtl.append(f"map_Kd {part.texture_name}")
    if mtl_name:
        mtl = [f"newmtl {material}", "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", "d 1", "illum 1"]
        if texture_name:
            mtl.append(f"map_Kd {texture_name}")
        mtl += part_mtl
        atomic_write_text(path.parent / mtl_name, "\n".join(mtl) + "\n")
    atomic_write_text(path, "\n".join(lines) + "\n")
