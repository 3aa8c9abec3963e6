"""Split the real portraits into two person-disjoint halves (issue 14: a photo-derived skin bank is
built from half A and its renders are scored against half B only, otherwise a render wearing person
X's skin would trivially match X's photo).

    python experiments/realism_photo_split.py --real DIR [--out experiments/results/realism_photo_split.json]
        [--names-a FILE]

Rule (fixed before any result was seen): the photos (``*.jpg`` / ``*.png`` of DIR, one portrait per
Congress member) are ordered by the SHA-256 of their file name; the first half is A, the rest B.
The folder's file names are member ids, so the halves share no id; in case one person has two ids,
every cross-half pair of dlib embeddings closer than ``--same-person`` (0.5; dlib's same-person
threshold is 0.6) is listed and its B photo is left out of B.  ``--names-a`` writes A's file names,
one a line (for ``python -m digitaltwin_jax.synth.photo_skin --names``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def split_names(names) -> tuple[list[str], list[str]]:
    """``(A, B)``: ``names`` ordered by the SHA-256 of the name, first half A (``len // 2``)."""
    order = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    h = len(order) // 2
    return sorted(order[:h]), sorted(order[h:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--same-person", type=float, default=0.5)
    ap.add_argument("--out", default=str(HERE / "results" / "realism_photo_split.json"))
    ap.add_argument("--names-a", default=None)
    a = ap.parse_args(argv)
    from regressor_realism import real_embeddings

    from digitaltwin_jax.io.atomic import atomic_write_text

    real, names = real_embeddings(Path(a.real).expanduser())
    folder = names[:-2]  # the last two are the shipped photos
    A, B = split_names(folder)
    pos = {n: i for i, n in enumerate(folder)}
    ea, eb = real[[pos[n] for n in A]], real[[pos[n] for n in B]]
    d = np.linalg.norm(ea[:, None, :] - eb[None, :, :], axis=2)
    close = [(A[i], B[j], float(d[i, j])) for i, j in zip(*np.nonzero(np.nan_to_num(d, nan=9.0) < a.same_person))]
    drop = sorted({b for _, b, _ in close})
    B_kept = [n for n in B if n not in drop]
    fin = lambda ns: int(np.isfinite(real[[pos[n] for n in ns], 0]).sum())  # noqa: E731
    rec = {"rule": "order by sha256(file name); first half A; B minus photos closer than same_person to an A photo",
           "same_person": a.same_person, "A": A, "B": B_kept, "dropped_from_B": drop,
           "close_pairs": [{"a": x, "b": y, "distance": z} for x, y, z in close],
           "with_face": {"A": fin(A), "B": fin(B_kept)},
           "nearest_cross_half_distance": {"median": float(np.nanmedian(np.nanmin(d, axis=0))),
                                           "min": float(np.nanmin(d))}}
    atomic_write_text(Path(a.out), json.dumps(rec, indent=1))
    if a.names_a:
        atomic_write_text(Path(a.names_a).expanduser(), "\n".join(A) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k not in ("A", "B")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
