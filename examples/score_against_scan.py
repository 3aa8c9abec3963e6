"""Score an avatar against your own 3D scan: ARMSE (paper section 4.3) and an error heat map.

The protocol of :func:`digitaltwin_jax.evaluation.evaluate_model_prediction`: 7 landmarks (eye
corners, subnasale, mouth corners) give a similarity alignment, point-to-plane ICP with scale refines
it, both meshes are cropped at radius d around the nose tip, and ARMSE is the mean of the two
directed RMS distances (exact point-to-triangle distances, mm and % of the interocular distance).

With your own data::

    python examples/score_against_scan.py --scan scan.obj --scan-landmarks scan_lm7.txt \
        --prediction out/me/head.obj --out heat

``scan_lm7.txt``: 7 rows ``x y z`` (mm, the scan's frame) in the order right-eye outer corner,
right-eye inner corner, left-eye inner corner, left-eye outer corner, subnasale, right mouth
corner, left mouth corner (``model.eval_landmark_indices``).  The scan may be in any frame and any
topology; it must be in millimetres.  ``head.obj`` is an avatar folder's mesh (its head vertices
come first; the eyes that follow are ignored).

Without arguments the "scan" is a stand-in: the full-resolution head model (11,248 vertices) with a
random identity, scored against two predictions in the low-resolution topology: the same identity
(the low head is a subset of the full head's vertices, so its ARMSE is the decimation error only) and
the template (the mean head).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def stand_in_scan(seed: int):
    """A (vertices, faces, landmarks7) "scan" and the same identity in the low topology."""
    from digitaltwin_jax import head_shape, load_head_model

    full, low = load_head_model("full"), load_head_model("low")
    coeffs = np.random.default_rng(seed).standard_normal(full.num_identity).astype(np.float32)
    scan_v = np.asarray(head_shape(full, coeffs))
    landmarks7 = scan_v[np.asarray(full.eval_landmark_indices)]
    same_identity = np.asarray(head_shape(low, coeffs))
    return scan_v, np.asarray(full.faces), landmarks7, same_identity


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", help="your scan (any mesh format meshio reads; OBJ with UV seams too)")
    ap.add_argument("--scan-landmarks", help="7 landmarks of the scan, one 'x y z' row each (mm)")
    ap.add_argument("--prediction", help="the avatar's head.obj (low-resolution topology)")
    ap.add_argument("--out", default="out/heat", help="folder for heat.png and heat.ply")
    ap.add_argument("--seed", type=int, default=0, help="identity of the stand-in scan")
    args = ap.parse_args(argv)

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation import evaluate_model_prediction, render_error_heatmap, write_error_ply

    model = load_head_model("low")
    if args.scan:
        from digitaltwin_jax.io import read_mesh, read_obj

        scan_v, scan_f = read_mesh(args.scan)
        landmarks7 = np.loadtxt(args.scan_landmarks, dtype=np.float64).reshape(7, 3)
        predictions = {"prediction": read_obj(args.prediction).vertices[: model.num_vertices]}
    else:
        scan_v, scan_f, landmarks7, same = stand_in_scan(args.seed)
        predictions = {"same identity": same, "template": np.asarray(model.vertices)}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, pred in predictions.items():
        res = evaluate_model_prediction(model, pred, scan_v, scan_f, landmarks7)
        for row in res.table():  # one row per crop radius d (80, 90, 100, 110 mm)
            print(f"{name:14s} d = {row['radius']:5.1f} mm: ARMSE {row['armse_mm']:.3f} mm "
                  f"({row['armse_percent_iod']:.2f} % IOD)")
        scores[name] = [row["armse_mm"] for row in res.table()]
        # per-vertex distance of the aligned prediction to the scan at the largest radius (NaN = cropped)
        err = res.armse[-1].pred_errors
        stem = name.replace(" ", "_")
        render_error_heatmap(out / f"{stem}_heat.png", res.alignment.vertices, model.faces, err, vmax=3.0)
        write_error_ply(out / f"{stem}_heat.ply", res.alignment.vertices, model.faces, err, vmax=3.0)
    print("heat maps in", out)
    return {"armse_mm": scores, "out": out}


if __name__ == "__main__":
    main()
