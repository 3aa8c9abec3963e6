"""Drop a default energy term by name, without changing the package.

The fit's free variables follow from its terms: the ``"corrective"`` term
brings the corrective field deltaP into the problem (``CorrectiveTerm.unknowns``), so without it
deltaP is no unknown and stays 0 - no separate switch (``FitConfig.fit_corrective`` is a deprecated
shorthand for the same).  Dropping ``"expression_prior"`` keeps beta free (the landmark term brings
it in) but unregularised.

Usage::

    python examples/drop_term.py [--seed 3]
"""
from __future__ import annotations

import numpy as np

from digitaltwin_jax import fitting as F
from digitaltwin_jax.model.head_model import asset_path, load_head_model


def without(terms, *names: str) -> tuple[F.Term, ...]:
    """``terms`` less the ones called ``names`` (each must be present)."""
    missing = set(names) - {t.name for t in terms}
    if missing:
        raise ValueError(f"no term called {sorted(missing)}; terms are {[t.name for t in terms]}")
    return tuple(t for t in terms if t.name not in names)


def main(argv=None) -> dict:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from custom_energy_term import synthetic_face  # a synthetic face with known landmarks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=F.FitConfig().num_iterations, help="Gauss-Newton iterations")
    args = ap.parse_args(argv)
    res = "low" if asset_path("ict_head_low.npz").exists() else "full"
    model = load_head_model(res)
    shape, landmarks, _ = synthetic_face(model, seed=args.seed)
    hw = (480, 640)
    cfg = F.FitConfig(num_iterations=args.iterations)
    results = {}
    for label, terms in (
        ("paper energy", F.default_terms(cfg)),
        ("- corrective", without(F.default_terms(cfg), "corrective")),
        ("- expression_prior", without(F.default_terms(cfg), "expression_prior")),
    ):
        r = F.fit(model, landmarks, hw, shape=shape, config=cfg, terms=terms)
        results[label] = (terms, r)
        print(f"{label:20s} free {F.free_variables(terms, cfg)}  |deltaP| max {np.abs(r.params.delta_p).max():6.3f} mm"
              f"  sum beta {r.params.beta.sum():5.2f}")
    return {"results": results, "config": cfg}


if __name__ == "__main__":
    main()
