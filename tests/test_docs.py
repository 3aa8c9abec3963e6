"""The docs site builds in strict mode, fails on a broken link or reference, and its reference holds
every public function and class of every package with its docstring; the README stays a short front
page whose numbers come from the results files.

Needs the ``docs`` extra (part of ``test``: ``pip install ".[test]"``).
"""
from __future__ import annotations

import ast
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "digitaltwin_jax"
README = ROOT / "README.md"

pytest.importorskip("mkdocs", reason='the docs extra is not installed (pip install ".[docs]")')
pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python is not installed")


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as a fresh clone builds it (``mkdocs build --strict``), once for this module."""
    out = tmp_path_factory.mktemp("site")
    proc = _mkdocs(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "WARNING" in ln]
    assert not warnings, "\n".join(warnings)
    return out


def _pages(site: Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text() for p in site.rglob("*.html")}


# ------------------------------------------------------------------------------------------ build
def test_site_builds_without_warnings(site):
    for page in ("index.html", "install/index.html", "quickstart/index.html", "how-it-works/index.html",
                 "head-model/index.html", "fidelity/index.html", "speed/index.html", "distributed/index.html",
                 "outputs/index.html", "guarantees/index.html", "licences/index.html", "changelog/index.html",
                 "experiments/index.html", "tutorials/index.html"):
        assert (site / page).exists(), page
    assert (site / "fidelity" / "fidelity_delta.svg").read_text().lstrip().startswith("<?xml")


def _broken_site(tmp_path: Path, page: str) -> subprocess.CompletedProcess:
    """Our mkdocs.yml (same plugins, hooks and validation) over one page of ``page``."""
    import yaml

    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    (docs / "index.md").write_text("# Index\n\n## Here\n\nSee [the page](other.md).\n")
    (docs / "other.md").write_text(page)
    cfg.update(docs_dir=str(docs), nav=[{"Home": "index.md"}, {"Other": "other.md"}],
               hooks=[str(ROOT / "docs" / "hooks.py")])
    cfg["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(cfg))
    return _mkdocs(config, tmp_path / "site")


@pytest.fixture(scope="module")
def harness_builds(tmp_path_factory):
    """The one-page harness builds a good page (so a failure below is the broken reference's)."""
    ok = _broken_site(tmp_path_factory.mktemp("ok"),
                      "# Other\n\nBack [home](index.md#here).\n\n::: digitaltwin_jax.camera\n")
    assert ok.returncode == 0, ok.stdout + ok.stderr


@pytest.mark.parametrize("page, why", [
    ("# Other\n\nA link to [nothing](missing.md).\n", "missing.md"),
    ("# Other\n\nA link to [an anchor](index.md#not-there).\n", "not-there"),
    ("# Other\n\n::: digitaltwin_jax.no_such_module\n", "no_such_module"),
    ("# Other\n\n<!-- gen:no-such-table -->\n", "no-such-table"),
    ("# Other\n\n```python\n--8<-- \"examples/no_such_script.py\"\n```\n", "no_such_script"),
])
def test_strict_build_fails_on_a_broken_reference(tmp_path, harness_builds, page, why):
    bad = _broken_site(tmp_path / "bad", page)
    assert bad.returncode != 0, f"a page with a broken reference ({why}) built:\n{bad.stdout}{bad.stderr}"
    assert why in bad.stdout + bad.stderr


# -------------------------------------------------------------------------------------- reference
def _public_objects():
    """``(module, name, docstring)`` of every public top-level function and class of the package.

    Public: not starting with ``_``, in a module whose path has no ``_``-prefixed part, and in the
    module's ``__all__`` when it has one.
    """
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if any(part.startswith("_") for part in rel.parts[1:] if part != "__init__"):
            continue
        module = ".".join(p for p in rel.parts if p != "__init__")
        tree = ast.parse(path.read_text())
        exported = None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                exported = set(ast.literal_eval(node.value))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if exported is None or node.name in exported:
                    out.append((module, node.name, ast.get_docstring(node) or ""))
    return out


def _plain(text: str) -> str:
    """Text with markup, roles and punctuation reduced to single-spaced words, for comparing."""
    text = re.sub(r":[a-z]+:", " ", text)
    text = re.sub(r"[^0-9A-Za-z]+", " ", text)
    return " ".join(text.split()).lower()


def test_every_public_function_is_in_the_reference_with_its_docstring(site):
    objects = _public_objects()
    assert len(objects) > 400  # the walk found the package
    pages = _pages(site)
    where = {}
    for name, text in pages.items():
        for ident in re.findall(r'id="(digitaltwin_jax\.[^"]+)"', text):
            where.setdefault(ident, name)
    missing = [f"{m}.{n}" for m, n, _ in objects if f"{m}.{n}" not in where]
    assert not missing, f"{len(missing)} public objects have no entry in the API reference: {missing[:20]}"
    no_doc = [f"{m}.{n}" for m, n, d in objects if not d.strip()]
    assert not no_doc, f"public objects without a docstring: {no_doc}"
    plain_pages = {}
    wrong = []
    for module, name, doc in objects:
        page = where[f"{module}.{name}"]
        if page not in plain_pages:
            plain_pages[page] = _plain(html.unescape(re.sub(r"<[^>]+>", " ", pages[page])))
        first = _plain(doc.strip().splitlines()[0])[:60].rsplit(" ", 1)[0]
        if first and first not in plain_pages[page]:
            wrong.append(f"{module}.{name}: {first!r}")
    assert not wrong, f"docstrings not rendered on their page: {wrong[:10]}"


def test_package_exports_resolve_to_documented_objects(site):
    """Names a package re-exports in ``__all__`` point at objects the reference documents."""
    import importlib
    import inspect

    ids = set()
    for text in _pages(site).values():
        ids.update(re.findall(r'id="(digitaltwin_jax\.[^"]+)"', text))
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        module = ".".join(init.relative_to(ROOT).parent.parts)
        tree = ast.parse(init.read_text())
        names = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and any(getattr(t, "id", None) == "__all__" for t in n.targets)), [])
        if not names:
            continue
        mod = importlib.import_module(module)
        for name in names:
            obj = getattr(mod, name, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("digitaltwin_jax"):
                if f"{obj.__module__}.{obj.__qualname__}" not in ids:
                    missing.append(f"{module}.{name} -> {obj.__module__}.{obj.__qualname__}")
    assert not missing, missing


def test_three_questions_are_answered_from_the_front_page(site):
    """The issue's new-user checks: from the front page, one link each to the answer."""
    index = (site / "index.html").read_text()
    fidelity = (site / "fidelity" / "index.html").read_text()
    pipeline = (site / "packages" / "pipeline" / "index.html").read_text()
    assert 'href="tutorials/custom_energy_term/"' in index
    assert 'href="packages/pipeline/#digitaltwin_jax.pipeline.Avatar"' in index
    assert 'id="digitaltwin_jax.pipeline.Avatar"' in pipeline and 'id="digitaltwin_jax.pipeline.reconstruct"' in pipeline
    assert 'href="fidelity/#what-chose-the-default-shape-source"' in index
    assert 'id="what-chose-the-default-shape-source"' in fidelity
    energy = (site / "tutorials" / "custom_energy_term" / "index.html").read_text()
    assert "def make_symmetry_term" in html.unescape(re.sub(r"<[^>]+>", "", energy))  # the script is on the page


# ---------------------------------------------------------------------------------- generated data
def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_speed_and_fidelity_pages_quote_their_json(site):
    speed = html.unescape((site / "speed" / "index.html").read_text())
    payload = json.loads((ROOT / "benchmarks" / "results" / "idle.json").read_text())
    for t in payload["targets"]:
        assert t["goal"] in speed
    assert speed.count("<tr>") > len(payload["rows"])  # every row of the run is in a table
    fidelity = html.unescape((site / "fidelity" / "index.html").read_text())
    rows = json.loads((ROOT / "experiments" / "results" / "fidelity_benchmark.json").read_text())["rows"]
    b = next(r for r in rows if r["set"] == "b" and r["method"] == "guarded+fit")["diff_95"]
    assert f"{b['mean']:+.2f} [{b['lo']:+.2f}, {b['hi']:+.2f}]" in fidelity


def test_hooks_fail_on_an_unknown_marker():
    hooks = _hooks()
    with pytest.raises(ValueError, match="unknown marker"):
        hooks.expand("text <!-- gen:nonsense --> text", "x.md")
    assert hooks.expand("<!-- gen:api digitaltwin_jax.camera -->").strip().startswith("::: digitaltwin_jax.camera")


# --------------------------------------------------------------------------------------- README
def test_readme_is_a_short_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    # the two commands, unchanged
    assert ("<!-- main-command -->\n```bash\npython3 -m venv .venv && . .venv/bin/activate && pip install . && "
            "digitaltwin avatar examples/astronaut.png -o out/astronaut\n```\n<!-- /main-command -->") in text
    assert ("<!-- test-command -->\n```bash\npython3 -m venv .venv && . .venv/bin/activate && "
            "pip install \".[test,distributed]\" && pytest\n```\n<!-- /test-command -->") in text
    # no lab notebook: issue numbers, commits, machine load
    assert not re.search(r"\bissue\b|#\d+", text, re.I)
    assert not re.search(r"\b[0-9a-f]{7,40}\b", text), "a commit hash"
    assert not re.search(r"\bload\b(?! `head)|\bcommit\b", text, re.I)
    # every local link resolves
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_numbers_come_from_the_results():
    text = README.read_text()
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    json_path = ROOT / "benchmarks" / "results" / "idle.json"
    block = text.split("<!-- speed-table -->\n", 1)[1].split("\n<!-- /speed-table -->", 1)[0]
    assert block == run_all.readme_table(json.loads(json_path.read_text()), json_path)
    bench = json.loads((ROOT / "experiments" / "results" / "fidelity_benchmark.json").read_text())
    default = bench["shipped_auto"]  # the default shape source the benchmark run admitted
    assert f"`{default.replace('+fit', '')}`" in text
    for s in ("a", "b"):
        d = next(r for r in bench["rows"] if r["set"] == s and r["method"] == default)["diff_95"]
        quoted = f"{d['mean']:.2f} mm [{d['lo']:.2f}, {d['hi']:.2f}]".replace("-", "−")
        assert quoted in text, quoted


def test_measurement_scripts_name_their_results():
    """Every one-off script in experiments/ says in its docstring which results file it wrote (or that
    it writes none)."""
    for path in sorted((ROOT / "experiments").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert re.search(r"experiments/results/|benchmarks/results/|[Rr]esults file|writes no results", doc), path.name
