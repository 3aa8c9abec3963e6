"""Add, remove and re-weight energy terms of the non-rigid fit without touching the solver.

The fit's energy (paper eq. 4) is a tuple of ``Term(name, fn, weight)``; ``fn(v, data)`` returns a
residual vector and the solver minimises ``sum weight * ||fn||^2``.  This script fits one synthetic
face (random identity given as the "regressed" shape, an asymmetric smile, 25 degrees of yaw, 1 px
landmark noise) four ways and prints what changed:

1. the paper's energy (:func:`digitaltwin_jax.fitting.default_terms`);
2. + a user term: left/right symmetry of the paired ``_L``/``_R`` blendshapes;
3. re-weighted: the expression prior x 10 (weights are traced, so this reuses the compiled solver);
4. removed: no corrective field (the ``corrective`` term dropped: deltaP is then no unknown).

A term is ``Term(name, fn, weight)`` with ``fn(v: FitVariables, data: FitData) -> residuals``:
``v`` holds the unknowns (``v.beta`` blendshape weights, ``v.q``/``v.t`` pose, ``v.f_s`` focal
scale, ...), ``data`` the face's landmarks and the model's constants.  Write ``fn`` with
``jax.numpy``; the solver differentiates it.  See :class:`digitaltwin_jax.fitting.Term` for the
per-face data (``Term(data=...)``) and per-topology constants (``Term(constants=...)``) a term can
carry, and ``experiments/landmark3d_term.py`` / ``experiments/symmetry_prior.py`` for two more.

Usage::

    python examples/custom_energy_term.py [--resolution low] [--seed 0]
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from digitaltwin_jax import fitting as F
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.geometry.rotations import matrix_to_quaternion
from digitaltwin_jax.model.head_model import asset_path, load_head_model


def symmetry_pairs(names):
    """Indices ``(left, right)`` of blendshapes named ``X_L`` / ``X_R``."""
    idx = {n: i for i, n in enumerate(names)}
    pairs = [(idx[n], idx[n[:-2] + "_R"]) for n in names if n.endswith("_L") and n[:-2] + "_R" in idx]
    return np.array(pairs, dtype=np.int32).reshape(-1, 2)


def make_symmetry_term(names):
    """A residual ``beta_L - beta_R`` over the paired blendshapes (a module-level-style closure)."""
    pairs = symmetry_pairs(names)

    def symmetry(v: F.FitVariables, data: F.FitData):
        return v.beta[pairs[:, 0]] - v.beta[pairs[:, 1]]

    return symmetry


def synthetic_face(model, seed=0, hw=(480, 640)):
    rng = np.random.default_rng(seed)
    identity = model.vertices + np.tensordot(rng.standard_normal(model.num_identity), model.identity_basis, 1)
    beta = np.zeros(model.num_expressions)
    beta[model.expression_index("mouthSmile_L")] = 0.6
    beta[model.expression_index("mouthSmile_R")] = 0.3
    verts = identity + np.tensordot(beta, model.expression_basis, 1)
    y = np.deg2rad(25.0)
    R = np.diag([1.0, -1.0, -1.0]) @ np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    h, w = hw
    f, t, c = float(max(h, w)), np.array([0.0, 0.0, 600.0]), np.array([w / 2, h / 2])
    # jaw landmarks: the silhouette points of the true mesh (densely sampled sections)
    lines = lmk.contour_lines(model.vertices, model.faces, model.landmark_indices, model.contour_candidates,
                              model.outer_surface_mask, max_points=64)
    pts = np.asarray(lmk.sample_points(verts, lines.indices, lines.weights))
    q = np.asarray(matrix_to_quaternion(jnp.asarray(R, jnp.float32)))
    sel = np.asarray(lmk.select_contour(pts, q, t, 1.0, f, c))
    lm3 = verts[model.landmark_indices].copy()
    lm3[:17] = pts[np.arange(17), sel]
    pc = lm3 @ R.T + t
    lm = f * pc[:, :2] / pc[:, 2:] + c + rng.normal(0, 1.0, (68, 2))
    return identity, lm, beta


def main(argv=None) -> dict:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", default="low" if asset_path("ict_head_low.npz").exists() else "full",
                    choices=("low", "full"))
    ap.add_argument("--seed", type=int, default=0, help="the synthetic face's identity and landmark noise")
    ap.add_argument("--iterations", type=int, default=F.FitConfig().num_iterations, help="Gauss-Newton iterations")
    ap.add_argument("--expression-sigma", type=float, default=0.3,
                    help="expression prior's sigma (eq. 3); the shipped 0.05 is calibrated to keep neutral "
                         "photos neutral and would flatten this face's smile")
    args = ap.parse_args(argv)
    res = args.resolution
    model = load_head_model(res)
    identity, lm, beta_true = synthetic_face(model, seed=args.seed)
    hw = (480, 640)
    cfg = F.FitConfig(num_iterations=args.iterations, expression_sigma=args.expression_sigma)
    paper = F.default_terms(cfg)
    sym = F.Term("symmetry", make_symmetry_term(model.expression_names), weight=2000.0)
    heavy = tuple(dataclasses.replace(t, weight=10 * t.weight) if t.name == "expression_prior" else t for t in paper + (sym,))
    runs = [
        ("paper energy", cfg, paper),
        ("+ symmetry term", cfg, paper + (sym,)),
        ("+ symmetry, expression prior x10", cfg, heavy),
        ("- corrective field", cfg, tuple(t for t in paper if t.name != "corrective")),
    ]
    iL, iR = model.expression_index("mouthSmile_L"), model.expression_index("mouthSmile_R")
    print(f"model '{res}' ({model.num_vertices} vertices); true mouthSmile_L/R = {beta_true[iL]:.2f}/{beta_true[iR]:.2f}")
    print(f"{'run':36s} {'smile_L':>8s} {'smile_R':>8s} {'rmse px':>8s} {'|dP| max':>9s}  energy per term")
    results = {}
    for label, c, terms in runs:
        r = F.fit(model, lm, hw, shape=identity, config=c, terms=terms)
        results[label] = r
        rmse = float(np.sqrt(np.nanmean(r.reprojection_errors**2)))
        energies = ", ".join(f"{k}={float(v):.1f}" for k, v in r.energy_terms.items())
        print(f"{label:36s} {r.params.beta[iL]:8.2f} {r.params.beta[iR]:8.2f} {rmse:8.2f} "
              f"{float(jnp.abs(r.params.delta_p).max()):9.3f}  {energies}")
    return {"model": model, "beta_true": beta_true, "landmarks": lm, "results": results,
            "smile": (iL, iR)}


if __name__ == "__main__":
    main()
