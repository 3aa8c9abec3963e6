"""Run every benchmark module in this folder and print one table (also written as JSON).

Usage:  python benchmarks/run_all.py [--quick] [--only NAME ...] [--out benchmarks/results/latest.json]

Each ``benchmarks/bench_*.py`` defines ``run(quick: bool = False) -> list[dict]``; a row has
``area, case, ours_ms, baseline, baseline_ms, ratio, target, notes`` (missing keys print as '-').
``ratio`` is baseline_ms / ours_ms (> 1 means we are faster) when both timings exist.

A row that is a target (issue 17) also has ``goal``, ``measured``, ``unit``, ``limit`` and ``better``
(``"lower"`` or ``"higher"``); they are printed again at the end as one table with PASS / FAIL.  A
benchmark module that raises (e.g. its baseline library is missing) is a FAILED line and exit code 1,
never a silent skip.  The JSON records the machine, the package versions and the git commit (with a
``dirty`` flag when the working tree differs from it): quote numbers from one idle run's JSON only.
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


def versions() -> dict:
    """Versions of the packages the benchmarks time or compare against (None when not installed)."""
    from importlib import metadata

    out = {}
    for name in ("digitaltwin_jax", "jax", "jaxlib", "numpy", "scipy", "opencv-python-headless", "pillow",
                 "dlib-bin", "libigl", "trimesh", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict:
    """``{"commit": sha, "dirty": bool}`` of the repository holding this folder (None outside git)."""
    import subprocess

    def git(*a):
        return subprocess.run(["git", "-C", str(HERE), *a], capture_output=True, text=True, timeout=30)

    r = git("rev-parse", "HEAD")
    if r.returncode != 0:
        return {"commit": None, "dirty": None}
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    return {"commit": r.stdout.strip(), "dirty": dirty}


def load_average() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def target_rows(rows: list[dict]) -> list[dict]:
    """The target rows with ``passed``: measured <= limit (``better="lower"``) or >= limit."""
    out = []
    for r in rows:
        if r.get("goal") is None:
            continue
        m, lim = r.get("measured"), r.get("limit")
        ok = None if m is None or lim is None else (m <= lim if r.get("better", "lower") == "lower" else m >= lim)
        out.append({**r, "passed": ok})
    return out


def _print_table(columns, table) -> None:
    widths = [max(len(c), *(len(t[i]) for t in table)) if table else len(c) for i, c in enumerate(columns)]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-|-".join("-" * w for w in widths))
    for t in table:
        print(" | ".join(x.ljust(w) for x, w in zip(t, widths)))


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
    ap.add_argument("--readme", default=None, metavar="README.md",
                    help="also replace the table between <!-- speed-table --> and <!-- /speed-table --> in this "
                         "file with this run's targets (so the README quotes exactly this run's JSON)")
    args = ap.parse_args(argv)

    rows, failures = [], []
    load_start = load_average()
    print(f"# load average at start: {load_start} (quote numbers only from an idle run)", file=sys.stderr)
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

    load_end = load_average()
    _print_table(COLUMNS, [[_fmt(r.get(c)) for c in COLUMNS] for r in rows])
    targets = target_rows(rows)
    if targets:
        print()
        print("targets (issue 17), measured in this run:")
        _print_table(("target", "measured", "limit", "result"), [
            [t["goal"], f"{_fmt(t['measured'])} {t.get('unit', '')}",
             f"{'<=' if t.get('better', 'lower') == 'lower' else '>='} {_fmt(t['limit'])} {t.get('unit', '')}",
             {True: "PASS", False: "FAIL", None: "-"}[t["passed"]]] for t in targets])
    for f in failures:
        print(f"FAILED {f['module']}: {f['error']}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {**machine_info(), "load_average_at_start": load_start,
                           "load_average_at_end": load_end}, "versions": versions(),
               "git": git_commit(), "quick": bool(args.quick), "only": args.only,
               "targets": [{k: t.get(k) for k in ("goal", "measured", "unit", "limit", "better", "passed")}
                           for t in targets],
               "rows": rows, "failures": failures}
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
    os.replace(tmp, out)
    print(f"written {out}", file=sys.stderr)
    if args.readme:
        write_readme_table(Path(args.readme), payload, out)
        print(f"updated the speed table in {args.readme}", file=sys.stderr)
    return 1 if failures else 0


def readme_table(payload: dict, json_path: Path) -> str:
    """Markdown for the README: the targets of ``payload`` (a run_all JSON), the machine and versions.

    The README names no commit and no machine load; the docs site's Speed page (generated from the same
    JSON by ``docs/hooks.py``) has them, with every row of the run.
    """
    m, v = payload["machine"], payload["versions"]
    try:
        shown = json_path.resolve().relative_to(HERE.parent)
    except ValueError:
        shown = json_path
    lines = [f"Measured by `python benchmarks/run_all.py` on {str(m['time'])[:10]} ({m['processor']}, "
             f"{m['cpu_count']} CPUs, JAX {v.get('jax')} on {m['jax_backend']}); from `{shown}`, every row in "
             f"[Speed](docs/speed.md).", "",
             "| target | measured | limit | result |", "|---|---|---|---|"]
    for t in payload["targets"]:
        op = "<=" if t.get("better", "lower") == "lower" else ">="
        res = {True: "pass", False: "**fail**", None: "-"}[t["passed"]]
        lines.append(f"| {t['goal']} | {_fmt(t['measured'])} {t['unit']} | {op} {_fmt(t['limit'])} {t['unit']} | {res} |")
    for f in payload["failures"]:
        lines.append(f"| benchmark module {f['module']} | FAILED: {f['error']} | | **fail** |")
    return "\n".join(lines)


def write_readme_table(readme: Path, payload: dict, json_path: Path) -> None:
    """Replace the block between the speed-table markers of ``readme`` (atomically)."""
    start, end = "<!-- speed-table -->", "<!-- /speed-table -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{readme_table(payload, json_path)}\n{end}{tail}"
    fd, tmp = tempfile.mkstemp(dir=readme.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, readme)


if __name__ == "__main__":
    sys.exit(main())
