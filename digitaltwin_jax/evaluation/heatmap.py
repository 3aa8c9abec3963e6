"""Per-vertex error heat maps (paper section 4.3, figure 5): coloured PLY and PNG renders.

* :func:`error_colors` maps per-vertex errors (mm) to ``uint8`` RGB through a matplotlib colormap
  (NaN, i.e. vertices that were not evaluated, get a neutral grey).
* :func:`write_ply` writes a triangle mesh with optional per-vertex colours (binary little endian
  or ascii), atomically (temporary file in the same folder, then ``os.replace``).
* :func:`render_error_heatmap` draws the coloured mesh with a painter's algorithm (triangles sorted
  back to front, back faces culled, Lambert-shaded) using matplotlib's Agg canvas directly -- no
  pyplot state -- and writes a PNG with a colour bar, atomically.  It is a light preview renderer,
  deliberately independent of the package's rasteriser.

View convention: the head frame is ICT's (x to the subject's left, y up, +z out of the face); the
``"front"`` view looks at the face from +z with the subject's left on the image's right.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from digitaltwin_jax.evaluation.inputs import mesh_arrays

__all__ = ["error_colors", "write_ply", "write_error_ply", "render_error_heatmap", "VIEWS"]

NAN_COLOR = (160, 160, 160)

# rotations applied to head-frame points before an orthographic view along -z (camera at +z)
VIEWS = {
    "front": np.eye(3),
    # subject's right profile: the camera on the subject's right (-x) side
    "right": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
    # subject's left profile: the camera on the subject's left (+x) side
    "left": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
}


def _check_errors(errors, n: int) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    if e.shape != (n,):
        raise ValueError(f"errors must have shape ({n},) (one per vertex), got {e.shape}")
    if np.isinf(e).any():
        raise ValueError("errors contain inf (use NaN for vertices that were not evaluated)")
    return e


def error_colors(errors, *, vmin: float = 0.0, vmax: float | None = None, cmap: str = "jet") -> np.ndarray:
    """Colours for per-vertex errors.

    Args:
      errors: ``(V,) float`` errors (mm); NaN marks vertices without a value.
      vmin, vmax: colour range; ``vmax`` None uses the 99th percentile of the finite errors.
      cmap: a matplotlib colormap name.

    Returns:
      ``(V, 3) uint8`` RGB; NaN entries get grey ``(160, 160, 160)``.
    """
    import matplotlib

    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"errors must have shape (V,), got {e.shape}")
    finite = np.isfinite(e)
    if vmax is None:
        vmax = float(np.percentile(e[finite], 99)) if finite.any() else 1.0
    if not vmax > vmin:
        vmax = vmin + 1.0
    rgba = matplotlib.colormaps[cmap](np.clip((np.where(finite, e, vmin) - vmin) / (vmax - vmin), 0, 1))
    rgb = np.round(rgba[:, :3] * 255).astype(np.uint8)
    rgb[~finite] = NAN_COLOR
    return rgb


def _atomic_write(path, write_fn) -> Path:
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write_fn(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_ply(path, vertices, faces, colors=None, *, binary: bool = True) -> Path:
    """Write a triangle mesh as PLY, with optional per-vertex RGB colours, atomically.

    Args:
      path: output file.
      vertices: ``(V, 3) float`` (written as float32 ``x y z``).
      faces: ``(F, 3) int`` (``vertex_indices`` as uchar count + int32 indices).
      colors: optional ``(V, 3) uint8`` (``red green blue``).
      binary: binary little endian (default) or ascii.

    Returns:
      The path written.
    """
    v, f = mesh_arrays(vertices, faces)
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != v.shape or c.dtype != np.uint8:
            raise ValueError(f"colors must be uint8 of shape {v.shape}, got {c.dtype} {c.shape}")
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
              "comment digitaltwin_jax error heat map", f"element vertex {v.shape[0]}",
              "property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {f.shape[0]}", "property list uchar int vertex_indices", "end_header"]
    head = ("\n".join(header) + "\n").encode("ascii")

    def write(fh):
        fh.write(head)
        if binary:
            vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
            if colors is not None:
                vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
            vrec = np.empty(v.shape[0], dtype=vfields)
            vrec["x"], vrec["y"], vrec["z"] = v[:, 0], v[:, 1], v[:, 2]
            if colors is not None:
                vrec["red"], vrec["green"], vrec["blue"] = c[:, 0], c[:, 1], c[:, 2]
            fh.write(vrec.tobytes())
            frec = np.empty(f.shape[0], dtype=[("n", "u1"), ("i", "<i4", (3,))])
            frec["n"] = 3
            frec["i"] = f
            fh.write(frec.tobytes())
        else:
            v32 = v.astype(np.float32)
            lines = []
            for i in range(v.shape[0]):
                # str() of a float32 is its shortest exactly round-tripping decimal
                row = f"{v32[i, 0]} {v32[i, 1]} {v32[i, 2]}"
                if colors is not None:
                    row += f" {c[i, 0]} {c[i, 1]} {c[i, 2]}"
                lines.append(row)
            lines += [f"3 {a} {b} {d}" for a, b, d in f]
            fh.write(("\n".join(lines) + "\n").encode("ascii"))

    return _atomic_write(path, write)


def write_error_ply(path, vertices, faces, errors, *, vmin=0.0, vmax=None, cmap="jet", binary=True) -> Path:
    """Write the mesh coloured by per-vertex ``errors (V,)`` (see :func:`error_colors`) as PLY."""
    v, f = mesh_arrays(vertices, faces)
    e = _check_errors(errors, v.shape[0])
    return write_ply(path, v, f, error_colors(e, vmin=vmin, vmax=vmax, cmap=cmap), binary=binary)


def render_error_heatmap(
    path,
    vertices,
    faces,
    errors,
    *,
    view="front",
    vmin: float = 0.0,
    vmax: float | None = None,
    cmap: str = "jet",
    title: str | None = None,
    label: str = "error (mm)",
    size_px: int = 600,
    shade: bool = True,
) -> Path:
    """Render a per-vertex error heat map of a mesh to a PNG (painter's algorithm), atomically.

    Args:
      path: output ``.png``.
      vertices: ``(V, 3) float`` head-frame vertices (mm); faces: ``(F, 3) int``.
      errors: ``(V,) float`` per-vertex errors (NaN = not evaluated, drawn grey).
      view: ``"front"``, ``"left"``, ``"right"`` or a ``(3, 3)`` rotation applied before looking
        along -z.
      vmin, vmax, cmap: colour scale (``vmax`` None: 99th percentile of the finite errors).
      title: optional figure title; label: colour bar label.
      size_px: output height in pixels (width adds the colour bar).
      shade: modulate colours by ``0.35 + 0.65 |n_z|`` (Lambert, light from the camera).

    Returns:
      The path written.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    v, f = mesh_arrays(vertices, faces)
    e = _check_errors(errors, v.shape[0])
    if isinstance(view, str):
        if view not in VIEWS:
            raise ValueError(f"view must be one of {tuple(VIEWS)} or a (3, 3) rotation, got {view!r}")
        rot = VIEWS[view]
    else:
        rot = np.asarray(view, dtype=np.float64)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
            raise ValueError("view must be a (3, 3) rotation matrix")
    finite = np.isfinite(e)
    if vmax is None:
        vmax = float(np.percentile(e[finite], 99)) if finite.any() else 1.0
    if not vmax > vmin:
        vmax = vmin + 1.0
    x = v @ rot.T
    tri = x[f]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    nn = np.linalg.norm(n, axis=1)
    nz = np.divide(n[:, 2], nn, out=np.zeros_like(nn), where=nn > 0)
    visible = nz > 0  # counter-clockwise faces seen from outside
    face_err = np.where(finite[f], e[f], 0.0).sum(1) / np.maximum(finite[f].sum(1), 1)
    face_err = np.where(finite[f].any(1), face_err, np.nan)
    colors = error_colors(face_err, vmin=vmin, vmax=vmax, cmap=cmap).astype(np.float64) / 255.0
    if shade:
        colors *= (0.35 + 0.65 * np.abs(nz))[:, None]
    order = np.argsort(tri[:, :, 2].mean(1))  # far (small z) first
    order = order[visible[order]]

    dpi = 100
    fig = Figure(figsize=(size_px * 1.25 / dpi, size_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.02, 0.02, 0.76, 0.90 if title else 0.96])
    ax.add_collection(PolyCollection(tri[order, :, :2], facecolors=colors[order], edgecolors="none", antialiased=False))
    lo, hi = x[:, :2].min(0), x[:, :2].max(0)
    pad = 0.03 * float((hi - lo).max())
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        fig.suptitle(title)
    mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(vmin, vmax), cmap=cmap)
    cax = fig.add_axes([0.82, 0.1, 0.03, 0.75])
    fig.colorbar(mappable, cax=cax, label=label)
    return _atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
