"""Layering of the package (issue 15 item 6, /work/shared/design/layout.md): a lower layer never
imports a higher one, and package modules import each other without cycles.

Imports are read from the source with ``ast`` (nothing is executed), including imports inside
functions.  ``from digitaltwin_jax.x import y`` counts as an import of module ``digitaltwin_jax.x.y``
when that is a module, else of ``digitaltwin_jax.x``; ``from digitaltwin_jax import name`` resolves
through the package root's own re-exports to the module that defines ``name``.
"""
from __future__ import annotations

import ast
import collections
import pathlib

import pytest

PACKAGE = "digitaltwin_jax"
ROOT = pathlib.Path(__file__).resolve().parent.parent / PACKAGE

# Lowest first.  A module may import its own layer and any lower one.  The first part of the dotted
# name below the package (``digitaltwin_jax.<part>``) decides the layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_lazy", "geometry", "io", "model", "distributed"),  # packages' lazy names; mesh maths (the z-buffer rasteriser too), files, the head model and its build (layout.md: lowest); the Ray engine
    ("camera",),  # intrinsics, projection, EPnP
    ("render",),  # shading, previews, shadow maps (over geometry.rasterize)
    ("energies", "solvers"),  # residual terms; generic Gauss-Newton
    ("fitting",),  # composes camera + energies + solvers
    ("frontend", "texture", "evaluation"),  # photo -> landmarks; UV texture; accuracy metrics
    ("regressor", "synth", "errors", "multiview", "shape_prior"),  # shape regressor and its training data; the user-facing errors; several photos of one person; the shape prior calibrated on real photos
    ("pipeline", "preview", "ray_avatars", "batch", "cli", "__main__", "__init__"),  # photo -> avatar, batch workers, the command, the package root
)

# Imports that break the order today, each with its reason; remove an entry when it is fixed (the
# test fails on entries that no longer occur, so this list cannot go stale).
KNOWN_LAYER_EXCEPTIONS: dict[tuple[str, str], str] = {}

# Import cycles through imports inside functions (module-level cycles are never allowed).
KNOWN_LAZY_CYCLES: dict[tuple[str, str], str] = {}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _root_reexports() -> dict[str, str]:
    """``name -> defining module`` for the names the package root imports (also those it imports
    lazily, named in an ``if TYPE_CHECKING:`` block)."""
    out = {}
    for node in ast.walk(ast.parse(MODULES[PACKAGE].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            for a in node.names:
                out[a.asname or a.name] = node.module
    return out


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported package module, line, at module level)`` for every import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    for n in tree.body:  # imports under a module-level ``if`` / ``try`` still run at import time
        if isinstance(n, (ast.If, ast.Try)):
            top_level |= {id(c) for c in ast.walk(n)}
    reexports = _root_reexports() if module != PACKAGE else {}
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if sub in MODULES:
                    targets.append(sub)
                elif mod == PACKAGE and a.name in reexports:
                    targets.append(reexports[a.name])
                else:
                    targets.append(mod)
        for t in targets:
            while t and t not in MODULES and "." in t:  # ``import digitaltwin_jax.x.y as z`` etc.
                t = t.rsplit(".", 1)[0]
            if t in MODULES and t != module:
                out.append((t, node.lineno, id(node) in top_level))
    return out


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"{module}: its part {part!r} is in no layer of LAYERS; add it there")


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)
    assert len(MODULES) > 50  # the walk found the package


def test_no_lower_layer_imports_a_higher_one():
    found, violations = set(), []
    for module in MODULES:
        for target, line, _ in _imports(module):
            if _layer(target) > _layer(module):
                if (module, target) in KNOWN_LAYER_EXCEPTIONS:
                    found.add((module, target))
                else:
                    violations.append(f"{module} (line {line}) imports {target}: layer {_layer(module)} < {_layer(target)}")
    assert not violations, "lower layers import higher ones:\n" + "\n".join(violations)
    stale = set(KNOWN_LAYER_EXCEPTIONS) - found
    assert not stale, f"these known exceptions no longer occur; remove them: {sorted(stale)}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    edges = collections.defaultdict(set)
    for module in MODULES:
        edges[module]
        for target, _, top in _imports(module):
            if top or not module_level_only:
                edges[module].add(target)
    return edges


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level():
    cycles = _cycles(_graph(module_level_only=True))
    assert not cycles, f"module-level import cycles: {cycles}"


def test_no_import_cycle_through_function_level_imports():
    edges = _graph(module_level_only=False)
    for a, b in KNOWN_LAZY_CYCLES:
        assert b in edges[a], f"known lazy cycle edge {a} -> {b} no longer exists; remove it"
        edges[a].discard(b)
    cycles = _cycles(edges)
    assert not cycles, f"import cycles (imports inside functions included): {cycles}"


@pytest.mark.parametrize("module", ["digitaltwin_jax.energies.landmarks", "digitaltwin_jax.energies.corrective"])
def test_energies_do_not_import_fitting(module):
    assert not [t for t, _, _ in _imports(module) if t.startswith("digitaltwin_jax.fitting")]
