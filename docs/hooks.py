"""MkDocs hooks: the site's tables, plots and API directives are generated at build time.

Pages hold markers, replaced before the Markdown is converted:

* ``<!-- gen:api PACKAGE_OR_MODULE ... -->``: a mkdocstrings directive for the package's own docstring and
  one for every submodule (walked from the sources, so a new module appears without editing a page);
* ``<!-- gen:speed-targets -->``, ``<!-- gen:speed-rows AREA -->``: tables from
  ``benchmarks/results/idle.json`` (what ``python benchmarks/run_all.py --out ...`` writes);
* ``<!-- gen:fidelity-table -->``, ``<!-- gen:fidelity-decision -->``, ``<!-- gen:fidelity-plot -->``:
  the fidelity benchmark's table, default rule and plot from ``experiments/results/fidelity_benchmark.json``;
* ``<!-- gen:multiview-plot -->``: ARMSE against the number of photos from
  ``experiments/results/multiview_fidelity_v3_s5002.json``.

An unknown marker fails the build.  The plots are SVG files added to the site (``on_files``).  The
docstrings' Sphinx roles (``:func:`x```) are shown as plain code (``on_page_content``).
"""
from __future__ import annotations

import io
import json
import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED_JSON = ROOT / "benchmarks" / "results" / "idle.json"
FIDELITY_JSON = ROOT / "experiments" / "results" / "fidelity_benchmark.json"
MULTIVIEW_JSON = ROOT / "experiments" / "results" / "multiview_fidelity_v3_s5002.json"
MARKER = re.compile(r"<!-- gen:([a-z-]+)((?: [^ \n>]+)*) -->")


# ----------------------------------------------------------------------------------------- API
def submodules(name: str) -> list[str]:
    """``name`` and, for a package, its public submodules (recursively), in source order by name."""
    path = ROOT.joinpath(*name.split("."))
    if not path.is_dir():
        if not path.with_suffix(".py").exists():
            raise ValueError(f"gen:api: no module {name}")
        return [name]
    out = [name]
    for info in sorted(pkgutil.iter_modules([str(path)]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        out.extend(submodules(f"{name}.{info.name}"))
    return out


def api_markdown(names: list[str]) -> str:
    blocks = []
    for top in names:
        for i, mod in enumerate(submodules(top)):
            is_package = ROOT.joinpath(*mod.split(".")).is_dir()
            if is_package:  # the package's docstring; its re-exported names are documented where defined
                blocks.append(f"::: {mod}\n    options:\n      members: false\n      heading_level: 3\n")
            else:
                blocks.append(f"::: {mod}\n    options:\n      heading_level: 3\n")
    return "\n".join(blocks)


# --------------------------------------------------------------------------------------- speed
def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def speed_payload() -> dict:
    return json.loads(SPEED_JSON.read_text())


def speed_targets() -> str:
    p = speed_payload()
    m, g, v = p["machine"], p["git"], p["versions"]
    lines = [f"Measured by `python benchmarks/run_all.py` on {m['time']} ({m['processor']}, {m['cpu_count']} CPUs, "
             f"JAX {v.get('jax')} on {m['jax_backend']}; load average {m.get('load_average_at_start')} at the start), "
             f"code `{(g.get('commit') or '?')[:10]}`{' + local changes' if g.get('dirty') else ''}; "
             f"generated from `benchmarks/results/idle.json`.", "",
             "| target | measured | limit | result |", "|---|---|---|---|"]
    for t in p["targets"]:
        op = "<=" if t.get("better", "lower") == "lower" else ">="
        res = {True: "pass", False: "**fail**", None: "-"}[t["passed"]]
        lines.append(f"| {_cell(t['goal'])} | {_fmt(t['measured'])} {t['unit']} | {op} {_fmt(t['limit'])} {t['unit']}"
                     f" | {res} |")
    for f in p["failures"]:
        lines.append(f"| benchmark module {f['module']} | FAILED: {_cell(f['error'])} | | **fail** |")
    return "\n".join(lines)


def speed_rows(area: str) -> str:
    rows = [r for r in speed_payload()["rows"] if r.get("area") == area]
    if not rows:
        raise ValueError(f"gen:speed-rows: no rows of area {area!r} in {SPEED_JSON.name}")
    lines = ["| case | ours (ms) | baseline | baseline (ms) | ratio | target | notes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (
            r.get("case", "").strip(), _fmt(r.get("ours_ms")), r.get("baseline") or "—", _fmt(r.get("baseline_ms")),
            _fmt(r.get("ratio")), r.get("target") or "—", r.get("notes") or "")) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ fidelity
def fidelity_payload() -> dict:
    return json.loads(FIDELITY_JSON.read_text())


def _ci(s, plus=False) -> str:
    if s is None:
        return "—"
    half = (s["hi"] - s["lo"]) / 2
    return f"{s['mean']:.2f} ± {half:.2f}"


def _diff(s) -> str:
    return "—" if s is None else f"{s['mean']:+.2f} [{s['lo']:+.2f}, {s['hi']:+.2f}]"


def fidelity_table() -> str:
    p = fidelity_payload()
    lines = ["| set | method | n | ARMSE d=80 | d=95 | d=110 | % IOD (95) | Δ template d=80 | Δ d=95 | Δ d=110 | Σβ "
             "| focal err (median %) | pose err (°) |", "|" + "---|" * 13]
    for r in p["rows"]:
        ref = r["method"] == "mean"
        sb = r.get("sum_beta")
        lines.append("| " + " | ".join([
            r["set"], r["method"], str(r["n"]), _ci(r["armse_80"]), _ci(r["armse_95"]), _ci(r["armse_110"]),
            f"{r['iod_95']['mean']:.2f}",
            "—" if ref else _diff(r["diff_80"]), "—" if ref else _diff(r["diff_95"]),
            "—" if ref else _diff(r["diff_110"]),
            "—" if sb is None else _ci(sb),
            "—" if r.get("focal_err_pct_median") is None else f"{r['focal_err_pct_median']:.0f}",
            "—" if r.get("pose_err_deg") is None else _ci(r["pose_err_deg"])]) + " |")
    return "\n".join(lines)


def fidelity_decision() -> str:
    p = fidelity_payload()
    lines = [f"Default shape source in this run: **`{p['shipped_auto']}`** (eligible: {p['shipped_auto_eligible']}).",
             "", "| method | eligible | why |", "|---|---|---|"]
    for m, d in p["decision"].items():
        lines.append(f"| `{m}` | {'yes' if d['eligible'] else 'no'} | {_cell(d['why'])} |")
    return "\n".join(lines)


def _svg(fig) -> bytes:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buf = io.BytesIO()
    FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None})
    return buf.getvalue()


def fidelity_plot_svg() -> bytes:
    """Paired difference to the template at d = 95 mm, one error bar per method and set."""
    from matplotlib.figure import Figure

    p = fidelity_payload()
    methods = [m for m in p["methods"] if m != "mean"]
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    for k, (s, colour) in enumerate((("a", "tab:blue"), ("b", "tab:orange"))):
        rows = {r["method"]: r for r in p["rows"] if r["set"] == s}
        xs = [i + (k - 0.5) * 0.25 for i in range(len(methods))]
        mean = [rows[m]["diff_95"]["mean"] for m in methods]
        err = [[rows[m]["diff_95"]["mean"] - rows[m]["diff_95"]["lo"] for m in methods],
               [rows[m]["diff_95"]["hi"] - rows[m]["diff_95"]["mean"] for m in methods]]
        ax.errorbar(xs, mean, yerr=err, fmt="o", color=colour, capsize=3,
                    label=f"set ({s}), n = {rows[methods[0]]['n']}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, fontsize=8)
    ax.set_ylabel("Δ ARMSE vs template,\nd = 95 mm (mm)")
    ax.set_title("Paired difference to the template (95% interval; below 0 = better)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def multiview_rows() -> list[tuple[int, float, float, float]]:
    """(photos, mean, lo, hi) of the multi-photo default's ARMSE at d = 95 mm (rows ``multiview_K``)."""
    p = json.loads(MULTIVIEW_JSON.read_text())
    out = []
    for key, r in p["rows"].items():
        m = re.fullmatch(r"multiview_(\d+)", key)
        if m:
            s = r["armse_95"]
            out.append((int(m.group(1)), s["mean"], s["lo"], s["hi"]))
    return sorted(out)


def multiview_plot_svg() -> bytes:
    from matplotlib.figure import Figure

    p = json.loads(MULTIVIEW_JSON.read_text())
    ks, mean, lo, hi = zip(*multiview_rows())
    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot(1, 1, 1)
    ax.errorbar(ks, mean, yerr=[[m - l for m, l in zip(mean, lo)], [h - m for m, h in zip(mean, hi)]], fmt="o-",
                capsize=3)
    ax.set_xlabel("photos of one person")
    ax.set_ylabel("ARMSE, d = 95 mm (mm)")
    ax.set_xticks(list(ks))
    ax.set_title(f"{p['heads_all_views_found']} synthetic heads, seed {p['seed']} (95% interval)", fontsize=9)
    fig.tight_layout()
    return _svg(fig)


GENERATED_FILES = {"fidelity/fidelity_delta.svg": fidelity_plot_svg,
                   "multiview/armse_vs_photos.svg": multiview_plot_svg}


# --------------------------------------------------------------------------------- mkdocs hooks
def expand(markdown: str, page_path: str = "") -> str:
    """``markdown`` with every ``<!-- gen:... -->`` marker replaced (``ValueError`` on an unknown one)."""

    def one(m: re.Match) -> str:
        kind, args = m.group(1), m.group(2).split()
        up = "../" * page_path.count("/")
        if kind == "api":
            return api_markdown(args)
        if kind == "speed-targets":
            return speed_targets()
        if kind == "speed-rows":
            return speed_rows(" ".join(args))
        if kind == "fidelity-table":
            return fidelity_table()
        if kind == "fidelity-decision":
            return fidelity_decision()
        if kind == "fidelity-plot":
            return f"![Paired ARMSE difference to the template per shape source]({up}fidelity/fidelity_delta.svg)"
        if kind == "multiview-plot":
            return f"![ARMSE against the number of photos]({up}multiview/armse_vs_photos.svg)"
        raise ValueError(f"{page_path}: unknown marker gen:{kind}")

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown, page, config, files, **kwargs):
    return expand(markdown, page.file.src_uri)


SPHINX_ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|obj|exc):(<code>)~?")


def on_page_content(html, page, config, files, **kwargs):
    """Docstrings use Sphinx roles (``:func:`name```); show the name in code, without the role."""
    return SPHINX_ROLE.sub(r"\1", html)


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for uri, make in GENERATED_FILES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
