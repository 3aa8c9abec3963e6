"""Run the Khronos glTF validator on a GLB and report its findings (issue 19 item 5).

The validator is the npm package ``gltf-validator`` (KhronosGroup/glTF-Validator compiled to
JavaScript); it needs Node.js.  Install it once, anywhere::

    npm install --prefix ~/.cache/digitaltwin_jax/node gltf-validator

and point ``GLTF_VALIDATOR_DIR`` at the folder holding ``node_modules`` (or at the package folder
itself) if it is not in one of the places :func:`find_validator` looks.  Nothing here downloads.

Usage::

    python benchmarks/validate_gltf.py out/astronaut/head.glb [more.glb ...]
    python benchmarks/validate_gltf.py --example     # reconstruct examples/astronaut.png first

Exit status 0 when every file has 0 errors and 0 warnings, 1 otherwise, 2 when the validator
is not available.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_JS = r"""
const fs = require('fs');
const validator = require(process.argv[1]);
const path = process.argv[2];
const data = new Uint8Array(fs.readFileSync(path));
validator.validateBytes(data, {maxIssues: 1000, uri: path})
  .then((r) => { process.stdout.write(JSON.stringify(r)); })
  .catch((e) => { process.stderr.write(String(e)); process.exit(3); });
"""


def find_validator() -> tuple[str, str] | None:
    """``(node executable, gltf-validator package folder)`` or None when either is missing.

    Looks in ``$GLTF_VALIDATOR_DIR`` (a folder with ``node_modules/gltf-validator`` or the package
    folder itself), ``./node_modules``, ``~/.cache/digitaltwin_jax/node/node_modules``,
    and npm's global root."""
    node = shutil.which("node")
    if node is None:
        return None
    roots = []
    if os.environ.get("GLTF_VALIDATOR_DIR"):
        d = Path(os.environ["GLTF_VALIDATOR_DIR"]).expanduser()
        roots += [d, d / "node_modules"]
    roots += [ROOT / "node_modules", Path.home() / ".cache/digitaltwin_jax/node/node_modules"]
    npm = shutil.which("npm")
    if npm:
        try:
            roots.append(Path(subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                                             timeout=30).stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    for r in roots:
        for cand in (r / "gltf-validator", r):
            if (cand / "package.json").is_file() and (cand / "index.js").is_file() and \
                    json.loads((cand / "package.json").read_text()).get("name") == "gltf-validator":
                return node, str(cand)
    return None


def validate(path, validator: tuple[str, str] | None = None) -> dict:
    """The validator's report for the GLB at ``path`` (its JSON: ``issues.numErrors``,
    ``issues.numWarnings``, ``issues.messages``, ``info``, ``validatorVersion``).

    Raises RuntimeError when the validator is not available or fails to run."""
    validator = validator or find_validator()
    if validator is None:
        raise RuntimeError("the Khronos glTF validator is not available: needs `node` and the npm package "
                           "gltf-validator (see benchmarks/validate_gltf.py)")
    node, pkg = validator
    p = subprocess.run([node, "-e", _JS, pkg, str(Path(path).resolve())], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"gltf-validator failed on {path}: {p.stderr.strip()[:2000]}")
    return json.loads(p.stdout)


def summary(report: dict) -> str:
    """One line per issue plus the counts."""
    iss = report["issues"]
    lines = [f"gltf-validator {report.get('validatorVersion', '?')}: {iss['numErrors']} errors, "
             f"{iss['numWarnings']} warnings, {iss['numInfos']} infos, {iss['numHints']} hints"]
    sev = {0: "ERROR", 1: "WARNING", 2: "INFO", 3: "HINT"}
    for m in iss["messages"]:
        lines.append(f"  {sev.get(m['severity'], m['severity'])} {m['code']} {m.get('pointer', '')}: {m['message']}")
    return "\n".join(lines)


def _example_glb() -> Path:
    from digitaltwin_jax.pipeline import reconstruct_file

    out = ROOT / "out" / "astronaut"
    reconstruct_file(ROOT / "examples" / "astronaut.png", out, overwrite=True)
    return out / "head.glb"


def main(argv) -> int:
    paths = [Path(a) for a in argv if not a.startswith("--")]
    if "--example" in argv:
        paths.append(_example_glb())
    if not paths:
        print(__doc__)
        return 2
    v = find_validator()
    if v is None:
        print("gltf-validator not available (needs node and the npm package gltf-validator)", file=sys.stderr)
        return 2
    ok = True
    for p in paths:
        rep = validate(p, v)
        print(f"{p}: {summary(rep)}")
        ok &= rep["issues"]["numErrors"] == 0 and rep["issues"]["numWarnings"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
