"""Does the 68-point route change the fit? (issue 28, priority 4)  ``--landmarks mediapipe`` vs ``dlib``.

The fidelity benchmark's out-of-distribution set (b) (seed 2001: DR heads with detail, expressions,
eyeballs, yaw +-35 deg, 24-135 mm focal lengths, blur, noise, JPEG) and the in-distribution set (a)
(seed 1001), ``--count`` images each, are rendered (cached under ``--root``); both routes' front ends
run on the same images (``detect_faces(landmarks=...)``, the first face, and its identity embedding,
aligned by that route's 68 points); then the benchmark's methods fit each and score the heads
against the true ones (ARMSE at d = 95 mm, paired route differences with 95 % t intervals), along
with the landmark error against the projected true landmark vertices, the fit's reprojection
RMSE, the pose error and the summed expression weights.

It writes no results file under ``experiments/results/``: the table is printed (quoted in
``docs/packages/frontend.md``), and ``--out`` saves it as JSON where you name.

    python experiments/landmark_route_fidelity.py --count 24 --root /tmp/route_fid --out /tmp/route_fid.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def frontend_rows(images, route):
    from digitaltwin_jax.frontend import FrontendError, detect_faces, identity_embedding

    n = len(images)
    emb = np.full((n, 128), np.nan, np.float32)
    lms = np.full((n, 68, 2), np.nan, np.float32)
    for i, im in enumerate(images):
        try:
            f = detect_faces(im, landmarks=route)[0]
        except FrontendError:
            continue
        emb[i], lms[i] = identity_embedding(im, f), f.landmarks
    return emb, lms


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--root", default="/tmp/route_fid")
    ap.add_argument("--out", default=None)
    ap.add_argument("--sets", default="b,a")
    ap.add_argument("--methods", default="mean+fit,guarded+fit,landmark_fit")
    args = ap.parse_args(argv)

    from digitaltwin_jax import load_head_model
    from digitaltwin_jax.evaluation.fidelity import mean_interval, paired_difference, rotation_angle_deg, score_heads
    from digitaltwin_jax.regressor.data import _neutral_vertices, _read_shards
    from digitaltwin_jax.regressor.evaluate import EvalData, predict_with_fits
    from digitaltwin_jax.regressor.guard import load_guard
    from digitaltwin_jax.regressor.weights import load_regressor
    from digitaltwin_jax.synth.dataset import generate
    from digitaltwin_jax.synth.evalsets import in_distribution_config, out_of_distribution_config

    model = load_head_model("low")
    reg, guard = load_regressor(), load_guard()
    methods = tuple(args.methods.split(","))
    result = {"count": args.count, "methods": methods, "rows": []}
    for key in args.sets.split(","):
        cfg = (out_of_distribution_config(args.count, 2001) if key == "b" else in_distribution_config(args.count, 1001))
        folder = Path(args.root) / f"set_{key}_{args.count}"
        generate(folder, cfg, workers=1, progress=False, contact_sheet_path=None)
        arr = _read_shards(folder, ("index", "vertices", "expression", "images", "K", "rotation", "landmarks_2d"), None)
        verts = _neutral_vertices(folder, arr["vertices"], arr["expression"]).astype(np.float32)
        truth = arr["landmarks_2d"].astype(np.float64)
        sizes = np.tile(np.array(arr["images"].shape[1:3], np.int64), (len(arr["index"]), 1))
        per_route = {}
        for route in ("dlib", "mediapipe"):
            t0 = time.perf_counter()
            emb, lms = frontend_rows(arr["images"], route)
            t_fe = time.perf_counter() - t0
            data = EvalData(verts, emb, lms, sizes, np.array([f"{key}/{i}" for i in arr["index"]]),
                            K=arr["K"].astype(np.float64), rotation=arr["rotation"].astype(np.float64),
                            expression=arr["expression"].astype(np.float32))
            heads, fits = predict_with_fits(model, data, reg, methods, guard=guard, progress=False)
            scores = {m: score_heads(model, verts, h, radii=(95.0,)) for m, h in heads.items()}
            W = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
            nme_inner = 100 * np.linalg.norm(lms - truth, axis=-1)[:, 17:].mean(1) / W
            nme_all = 100 * np.linalg.norm(lms - truth, axis=-1).mean(1) / W
            per_route[route] = (scores, fits, nme_all)
            row = {"set": key, "route": route, "found": int(np.isfinite(lms[:, 0, 0]).sum()), "n": len(lms),
                   "frontend_s_per_image": t_fe / len(lms),
                   "landmark_nme_vs_truth_all": mean_interval(nme_all).as_dict(),
                   "landmark_nme_vs_truth_inner": mean_interval(nme_inner).as_dict()}
            for m in methods:
                row[f"{m}.armse95"] = mean_interval(scores[m].armse_mm[:, 0]).as_dict()
                if m in fits:
                    f = fits[m]
                    row[f"{m}.reproj_rmse_px"] = mean_interval(f.landmark_rmse_px).as_dict()
                    row[f"{m}.pose_err_deg"] = mean_interval(rotation_angle_deg(f.rotation, data.rotation)).as_dict()
                    row[f"{m}.sum_beta"] = mean_interval(f.beta.sum(1)).as_dict()
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
        diff = {"set": key, "route": "mediapipe - dlib (paired)"}
        for m in methods:
            diff[f"{m}.armse95"] = paired_difference(per_route["mediapipe"][0][m].armse_mm[:, 0],
                                                     per_route["dlib"][0][m].armse_mm[:, 0]).as_dict()
        diff["landmark_nme_vs_truth_all"] = paired_difference(per_route["mediapipe"][2], per_route["dlib"][2]).as_dict()
        result["rows"].append(diff)
        print(json.dumps(diff), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
