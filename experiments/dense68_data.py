"""Data for the dense -> 68 mapping (issue 28): synthetic renders with known 68 landmarks, and the
MediaPipe Face Mesh run on each.

Renders: Gaussian-identity heads (ICT-FaceKit model, MIT), random expressions, roll/pitch +-15 deg,
yaw +-40 deg, 384 px, procedural skin.  For each render the mesh is run from the ground-truth face box
(no detector in the loop: the mapping must not depend on which detector found the face), twice (the
second crop from the first mesh, as MediaPipe's tracking does).  Writes ``dense`` (N, 468, 2),
``truth`` (N, 68, 2) (projected landmark vertices, corner-origin pixels), ``presence`` (N,),
``yaw_deg`` (N,) to the npz named on the command line; with ``--dlib`` also ``dlib`` (N, 68, 2): dlib's
68-point predictor (coarse-to-fine, on the ground truth's dlib-like box), NaN where it was not run,
for comparing both routes against the same ground truth; with ``--geometry`` also each render's
``vertices`` (N, V, 3), ``rotation`` (N, 3, 3), ``translation`` (N, 3) and ``K`` (N, 3, 3) (the dense
correspondence of ``experiments/dense_correspondence.py``).

It writes no results file: its output is the training or test data for ``experiments/dense68_fit.py``
and ``experiments/dense_correspondence.py``, in the npz named on the command line.

    python experiments/dense68_data.py /tmp/dense68_train.npz --count 400 --seed 1
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--max-yaw", type=float, default=40.0)
    ap.add_argument("--dlib", action="store_true")
    ap.add_argument("--geometry", action="store_true",
                    help="also save each render's head vertices (V, 3), rotation, translation and K")
    args = ap.parse_args(argv)

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.frontend.mediapipe_models import FaceMesh, mesh_roi_from_points
    from digitaltwin_jax.synth.albedo import procedural_bank, uv_geometry
    from digitaltwin_jax.synth.engine import RenderConfig, SceneRenderer
    from digitaltwin_jax.synth.scene import CameraConfig, SceneConfig, sample_scene
    from digitaltwin_jax.synth.shapes import GaussianIdentitySource

    m = load_head_model("low")
    geom = uv_geometry(m.vertices, m.faces, m.uvs, m.uv_faces, m.landmark_indices, 256)
    bank = procedural_bank(geom, 8, seed=args.seed)
    cfg = SceneConfig(image_size=args.size, expressions=True,
                      camera=CameraConfig(max_rotation_deg=15.0, max_yaw_deg=args.max_yaw))
    r = SceneRenderer(m, bank, RenderConfig(eyes="eyeballs", ao_directions=8))
    src = GaussianIdentitySource(m)
    mesh = FaceMesh()
    if args.dlib:
        from digitaltwin_jax.frontend.dlib_models import DlibShapePredictor
        from digitaltwin_jax.frontend.merged import dlib_like_box
        from digitaltwin_jax.frontend.refine import CoarseToFinePredictor

        dlib68 = CoarseToFinePredictor(DlibShapePredictor())
    dense, truth, pres, yaws, dl, geo = [], [], [], [], [], []
    t0 = time.time()
    for i in range(args.count):
        scene = sample_scene(i, args.seed, cfg, src, m, len(bank))
        res = r.render(scene)
        gt = np.asarray(res.landmarks, np.float64)
        lo, hi = gt.min(0), gt.max(0)
        d = gt[45] - gt[36]
        c, side, ang = (lo + hi) / 2, 1.5 * float((hi - lo).max()), float(np.arctan2(d[1], d[0]))
        p, pr = mesh(res.image, c, side, ang)
        p, pr = mesh(res.image, *mesh_roi_from_points(p))
        dense.append(p[:, :2]); truth.append(gt); pres.append(pr)
        dl.append(dlib68(res.image, dlib_like_box(p[:, :2])) if args.dlib else np.full((68, 2), np.nan))
        if args.geometry:
            geo.append((np.asarray(scene.vertices, np.float32), np.asarray(scene.rotation, np.float32),
                        np.asarray(scene.translation, np.float32), np.asarray(scene.K, np.float32)))
        yaws.append(float(scene.euler_deg[1]))
        if i % 25 == 0:
            print(i, f"{time.time() - t0:.0f} s", flush=True)
    extra = {}
    if args.geometry:
        extra = {k: np.array([g[i] for g in geo]) for i, k in enumerate(("vertices", "rotation", "translation", "K"))}
    np.savez_compressed(args.out, dense=np.array(dense, np.float32), truth=np.array(truth, np.float32),
                        presence=np.array(pres, np.float32), yaw_deg=np.array(yaws, np.float32),
                        dlib=np.array(dl, np.float32), **extra)


if __name__ == "__main__":
    main()
