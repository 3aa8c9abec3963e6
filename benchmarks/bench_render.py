"""CPU rasteriser benchmark (shared by previews, texture projection and the synthetic-image engine).

Cases (mesh: the shipped low head, 2,900 vertices / 5,698 triangles, if the asset exists; else an
icosphere with 2,562 vertices / 5,120 triangles):

* full textured render at 256 x 256 with 2x supersampling (rasterise at 512 x 512, Lambert +
  Blinn-Phong, bilinear UV texture, box filter down), back faces culled -- the synthetic-image
  engine's setting; target >= 10 images/s on the 2-core machine;
* z-buffer rasterisation alone at 512 x 512;
* UV-space rasterisation of the layout at 2048 x 2048 (first step of texture projection).

Baseline: the usual quick preview renderer, a painter's algorithm -- triangles sorted by depth and
filled one by one with ``cv2.fillConvexPoly`` (flat Lambert shading, no z-buffer, no barycentrics,
no texture), at the same 512 x 512 resolution.

Times: median wall-clock ms over the repeats (min wall and median process-CPU ms in the notes, with
the load average: the machine is shared by several processes).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from digitaltwin_jax.render import icosphere, orbit_camera, project_points, rasterize, render_mesh
from digitaltwin_jax.render.shading import face_normals
from digitaltwin_jax.texture import uv_sampling

AREA = "render"


def _time(fn, repeats):
    ws, cs, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        ws.append(time.perf_counter() - w0)
        cs.append(time.process_time() - c0)
    return 1e3 * float(np.median(ws)), 1e3 * min(ws), 1e3 * float(np.median(cs)), out


def _mesh():
    asset = Path(__file__).resolve().parents[1] / "digitaltwin_jax" / "assets" / "ict_head_low.npz"
    if asset.exists():
        from digitaltwin_jax.model.head_model import load_head_model

        m = load_head_model("low")
        return "head low", m.vertices.astype(np.float64), m.faces, m.uvs, m.uv_faces
    v, f = icosphere(4, 90.0)
    uv = np.stack([0.5 + np.arctan2(v[:, 0], v[:, 2]) / (2 * np.pi), 0.5 + np.arcsin(v[:, 1] / 90.0) / np.pi], 1)
    return "icosphere", v.astype(np.float64), f, uv.astype(np.float32), f


def _painter(vc, faces, K, size, light):
    """Baseline: depth-sorted cv2.fillConvexPoly, flat Lambert."""
    pts = project_points(vc, K)
    img = np.zeros((size, size, 3), np.uint8)
    fn = face_normals(vc, faces)
    shade = np.clip(0.35 + 0.65 * np.maximum(fn @ light, 0), 0, 1)
    order = np.argsort(-vc[faces].mean(axis=1)[:, 2])  # far to near
    xy = np.round(pts[:, :2] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    front = fn[:, 2] < 0
    for i in order:
        if front[i]:
            c = int(255 * shade[i])
            cv2.fillConvexPoly(img, xy[faces[i]], (c, c, c), lineType=cv2.LINE_8, shift=4)
    return img


def run(quick: bool = False) -> list[dict]:
    reps = 3 if quick else 10
    name, v, f, uv, uvf = _mesh()
    load = os.getloadavg()[0]
    R, t = orbit_camera(20.0, distance=520.0, target=v.mean(axis=0))
    vc = v @ R.T.astype(np.float64) + t
    K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
    K2 = K.copy()
    K2[:2] *= 2
    tex = (np.random.default_rng(0).random((1024, 1024, 3)) * 0.5 + 0.3).astype(np.float32)
    light = np.array([-0.3, -0.5, -1.0]) / np.linalg.norm([-0.3, -0.5, -1.0])
    rows = []

    render = lambda: render_mesh(vc, f, K, (256, 256), uvs=uv, uv_faces=uvf, texture=tex,  # noqa: E731
                                 supersample=2, cull_backfaces=True, specular=0.2)
    painter = lambda: _painter(vc, f, K2, 512, light)  # noqa: E731
    render()
    ours, ours_min, ours_cpu, (img, mask) = _time(render, reps)
    base, base_min, base_cpu, _ = _time(painter, reps)
    rows.append(dict(area=AREA, case=f"render 256x256 SSx2 textured ({name}, {len(f)} tris)",
                     ours_ms=ours, baseline="cv2.fillConvexPoly painter (flat, 512px)", baseline_ms=base,
                     target=">= 10 images/s (<= 100 ms)",
                     notes=f"{1e3 / ours:.1f} img/s wall, {1e3 / ours_cpu:.1f} img/s per CPU-second; "
                           f"min {ours_min:.1f} ms; CPU {ours_cpu:.1f} ms (baseline CPU {base_cpu:.1f}); "
                           f"coverage {mask.mean():.2f}; load {load:.1f}"))

    pts = project_points(vc, K2)
    pts[:, 2] = vc[:, 2]
    ras = lambda: rasterize(pts, f, 512, 512, cull_backfaces=True)  # noqa: E731
    ours, ours_min, ours_cpu, fr = _time(ras, reps)
    rows.append(dict(area=AREA, case="z-buffer rasterise 512x512 (bary + depth)", ours_ms=ours,
                     baseline="cv2.fillConvexPoly painter (flat, 512px)", baseline_ms=base,
                     target="-", notes=f"min {ours_min:.1f} ms, CPU {ours_cpu:.1f} ms; "
                                        f"{int(fr.mask.sum())} covered pixels; load {load:.1f}"))

    size = 1024 if quick else 2048
    uvr = lambda: uv_sampling(uv, uvf, size)  # noqa: E731
    ours, ours_min, ours_cpu, s = _time(uvr, max(2, reps // 3))
    rows.append(dict(area=AREA, case=f"UV-space rasterise {size}x{size}", ours_ms=ours, baseline=None,
                     baseline_ms=None, target="-",
                     notes=f"min {ours_min:.0f} ms, CPU {ours_cpu:.0f} ms; {s.texels.size} texels covered"))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
