"""Fit and measure the dense -> 68 mapping (issue 28; :mod:`digitaltwin_jax.frontend.dense68`).

Inputs: npz files written by ``experiments/dense68_data.py`` (train and held-out test renders, different
seeds, so different heads, expressions and poses).  Prints the held-out error (NME, % of the true
outer-eye-corner distance; all 68 points, inner 17-67, jaw 0-16) of several variants, and with
``--save`` writes the chosen one to ``digitaltwin_jax/assets/dense_to_68.npz``.

It writes no results file (the numbers are printed and quoted in ``docs/packages/frontend.md``); its
only output is the asset.

    python experiments/dense68_fit.py /tmp/d68_train.npz /tmp/d68_test.npz --save
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def nme(pred, truth, idx=slice(None)):
    W = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    return 100 * (np.linalg.norm(pred - truth, axis=-1)[:, idx].mean(1) / W)


def main(argv=None):
    from digitaltwin_jax.frontend.dense68 import fit_dense68

    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--k", type=int, default=8)
    args = ap.parse_args(argv)
    tr, te = np.load(args.train), np.load(args.test)
    ok_tr, ok_te = tr["presence"] >= 0.5, te["presence"] >= 0.5
    Ptr, Ttr = tr["dense"][ok_tr], tr["truth"][ok_tr]
    Pte, Tte = te["dense"][ok_te], te["truth"][ok_te]
    print(f"train {len(Ptr)} / {len(ok_tr)} renders with a mesh, test {len(Pte)} / {len(ok_te)}")
    rows = {}
    for k in (1, 4, 8, 12):
        for yaw in (False, True):
            if k == 1 and yaw:
                continue
            m = fit_dense68(Ptr, Ttr, k=k, yaw=yaw)
            pred = m(Pte)
            e = nme(pred, Tte)
            rows[f"k={k} yaw={yaw}"] = m, {"all": float(e.mean()), "inner": float(nme(pred, Tte, slice(17, 68)).mean()),
                                          "jaw": float(nme(pred, Tte, slice(0, 17)).mean()),
                                          "p90": float(np.percentile(e, 90))}
            print(f"k={k:2d} yaw={yaw!s:5}  " + "  ".join(f"{a} {b:.2f}" for a, b in rows[f'k={k} yaw={yaw}'][1].items()))
    yaws = te["yaw_deg"][ok_te]
    chosen = f"k={args.k} yaw=True"
    m, _ = rows[chosen]
    e = nme(m(Pte), Tte)
    for lo, hi in ((0, 10), (10, 25), (25, 45)):
        s = (np.abs(yaws) >= lo) & (np.abs(yaws) < hi)
        if s.any():
            print(f"  {chosen} |yaw| {lo}-{hi} deg: NME {e[s].mean():.2f} (n={s.sum()})")
    if args.save:
        out = Path(__file__).resolve().parents[1] / "digitaltwin_jax" / "assets" / "dense_to_68.npz"
        m.save(out)
        print("saved", out, json.dumps(rows[chosen][1]))


if __name__ == "__main__":
    main()
