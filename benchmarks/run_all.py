"""Run every benchmark module in this folder and print one table (also written as JSON).

Usage:  python benchmarks/run_all.py [--quick] [--only NAME ...] [--out benchmarks/results/latest.json]

Each ``benchmarks/bench_*.py`` defines ``run(quick: bool = False) -> list[dict]``; a row has
``area, case, ours_ms, baseline, baseline_ms, ratio, target, notes`` (missing keys print as '-').
``ratio`` is baseline_ms / ours_ms (> 1 means we are faster) when both timings exist.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ("area", "case", "ours_ms", "baseline", "baseline_ms", "ratio", "target", "notes")


def machine_info() -> dict:
    import jax

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(mod)
    return mod


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--only", nargs="*", default=None, help="module names, e.g. bench_laplacian")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    args = ap.parse_args(argv)

    rows, failures = [], []
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and path.stem not in args.only:
            continue
        print(f"# {path.stem} ...", file=sys.stderr, flush=True)
        try:
            for r in _load(path).run(quick=args.quick):
                if r.get("ratio") is None and r.get("ours_ms") and r.get("baseline_ms"):
                    r["ratio"] = r["baseline_ms"] / r["ours_ms"]
                rows.append(r)
        except Exception as e:  # one failing area must not hide the others
            failures.append({"module": path.stem, "error": f"{type(e).__name__}: {e}"})
            print(f"# {path.stem} FAILED: {e}", file=sys.stderr)

    table = [[_fmt(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(COLUMNS)]
    print(" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    print("-|-".join("-" * w for w in widths))
    for t in table:
        print(" | ".join(x.ljust(w) for x, w in zip(t, widths)))
    for f in failures:
        print(f"FAILED {f['module']}: {f['error']}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine_info(), "rows": rows, "failures": failures}
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
    os.replace(tmp, out)
    print(f"written {out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
