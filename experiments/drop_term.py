"""Drop a default energy term by name, without changing the package.

Issue 15 item 2 (iii).  The fit's free variables follow from its terms: the ``"corrective"`` term
brings the corrective field deltaP into the problem (``CorrectiveTerm.unknowns``), so without it
deltaP is no unknown and stays 0 - no separate switch (``FitConfig.fit_corrective`` is a deprecated
shorthand for the same).  Dropping ``"expression_prior"`` keeps beta free (the landmark term brings
it in) but unregularised.

Usage:  PYTHONPATH=. python experiments/drop_term.py
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


def main():
    from experiments.landmark3d_term import HW, synthetic_faces

    res = "low" if asset_path("ict_head_low.npz").exists() else "full"
    model = load_head_model(res)
    faces = synthetic_faces(model, 1, seed=3)
    cfg = F.FitConfig()
    for label, terms in (
        ("paper energy", F.default_terms(cfg)),
        ("- corrective", without(F.default_terms(cfg), "corrective")),
        ("- expression_prior", without(F.default_terms(cfg), "expression_prior")),
    ):
        r = F.fit(model, faces["lm2d"][0], HW, shape=faces["shapes"][0], config=cfg, terms=terms)
        print(f"{label:20s} free {F.free_variables(terms, cfg)}  |deltaP| max {np.abs(r.params.delta_p).max():6.3f} mm"
              f"  sum beta {r.params.beta.sum():5.2f}")


if __name__ == "__main__":
    main()
