"""frontend.process: the front end of one photo in a helper process gives the in-process numbers.

Each check runs in a fresh Python without JAX (as the command does: the helper is forked before JAX
is imported), comparing the helper's answers with ``detect_faces`` / ``identity_embedding`` run in
that same process on the same photo (the reference).
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "astronaut.png"

_SCRIPT = r'''
import json, os, sys
import numpy as np
from digitaltwin_jax.frontend import process
from digitaltwin_jax.frontend.api import detect_faces, identity_embedding
from digitaltwin_jax.io.images import read_image
photo, mode = sys.argv[1], sys.argv[2]
if mode == "die":  # the child ends without an answer
    process._child = lambda conn, path, index, *options: os._exit(3)
proc = process.start(photo, 0)
assert proc is not None and "jax" not in sys.modules
own_detect = lambda image: detect_faces(image)
own_embed = lambda image, face: identity_embedding(image, face)
import dataclasses
@dataclasses.dataclass
class S:
    detect: object
    embed: object
st = proc.stages(S(own_detect, own_embed))
image = read_image(photo)
out = {"fallback": proc.fallback}
try:
    faces = st.detect(image)
except Exception as exc:
    ref = None
    try:
        detect_faces(image)
    except Exception as exc2:
        ref = [type(exc2).__name__, str(exc2)]
    out.update(error=[type(exc).__name__, str(exc)], reference_error=ref, fallback=proc.fallback)
    print(json.dumps(out)); sys.exit(0)
emb = st.embed(image, faces[0])
ref_faces = detect_faces(image)
ref_emb = identity_embedding(image, ref_faces[0])
out.update(
    n=len(faces), n_ref=len(ref_faces),
    landmarks_equal=bool(np.array_equal(faces[0].landmarks, ref_faces[0].landmarks)),
    box_equal=bool(np.array_equal(faces[0].box, ref_faces[0].box)),
    embedding_max_diff=float(np.abs(np.asarray(emb) - ref_emb).max()),
    detect_name=st.detect.name, embed_name=st.embed.name, fallback=proc.fallback,
    jax_imported="jax" in sys.modules)
print(json.dumps(out))
'''


def _run(photo, mode="normal"):
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(photo), mode], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_helper_answers_equal_the_in_process_front_end():
    out = _run(EXAMPLE)
    assert out["fallback"] is None and not out["jax_imported"]
    assert out["n"] == out["n_ref"] == 1 and out["landmarks_equal"] and out["box_equal"]
    assert out["embedding_max_diff"] == 0.0
    assert "helper process" in out["detect_name"] and "helper process" in out["embed_name"]


def test_helper_raises_the_front_ends_own_error(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "noise.png"
    Image.fromarray((rng.uniform(size=(300, 300, 3)) * 40 + 100).astype(np.uint8)).save(p)
    out = _run(p)
    assert out["error"][0] == "NoFaceError" and out["error"] == out["reference_error"]


def test_a_helper_that_dies_is_reported_and_the_front_end_runs_here():
    out = _run(EXAMPLE, mode="die")
    assert out["fallback"] is not None and "exit code 3" in out["fallback"]
    assert out["landmarks_equal"] and out["embedding_max_diff"] == 0.0
    assert "in this process" in out["detect_name"]


def test_no_helper_once_jax_is_imported():
    import jax  # noqa: F401 - the point of the test

    from digitaltwin_jax.frontend import process

    assert process.start(EXAMPLE, 0) is None


def test_face_too_small_error_survives_pickling():
    import pickle

    from digitaltwin_jax.frontend.types import FaceTooSmallError

    e = pickle.loads(pickle.dumps(FaceTooSmallError(12.5, 32.0)))
    assert isinstance(e, FaceTooSmallError) and (e.size, e.minimum) == (12.5, 32.0)
    assert "12.5 px" in str(e)


@pytest.mark.parametrize("helper", ["1", "0"])
def test_the_command_with_and_without_the_helper(tmp_path, helper):
    """The command (a fresh process, as users run it) writes the same landmarks either way; the
    report names where the front end ran."""
    import os

    env = dict(os.environ, DIGITALTWIN_FRONTEND_PROCESS=helper, DIGITALTWIN_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "a"
    r = subprocess.run([sys.executable, "-m", "digitaltwin_jax", "avatar", str(EXAMPLE), "-o", str(out),
                        "--texture-size", "256"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    from digitaltwin_jax.frontend import detect_faces
    from digitaltwin_jax.io.images import read_image

    ref = detect_faces(read_image(EXAMPLE))[0]
    np.testing.assert_array_equal(np.asarray(rep["landmarks_2d"], np.float32), ref.landmarks)
    assert ("helper process" in rep["stages"]["detect"]) == (helper == "1")


def test_stages_answer_only_for_the_childs_own_photo():
    """Another image of the same size is detected in this process, not given the child's faces."""
    script = r'''
import dataclasses, json, sys
import numpy as np
from digitaltwin_jax.frontend import process
from digitaltwin_jax.io.images import read_image
photo = sys.argv[1]
proc = process.start(photo, 0)
calls = []
@dataclasses.dataclass
class S:
    detect: object
    embed: object
st = proc.stages(S(lambda image: calls.append("own") or ["own faces"], lambda image, face: None))
image = read_image(photo)
other = image.copy(); other[0, 0] ^= 1  # one pixel differs
print(json.dumps({"other": st.detect(other), "own_calls": len(calls), "same": len(st.detect(image)), "own_calls_after": len(calls)}))
'''
    r = subprocess.run([sys.executable, "-c", script, str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["other"] == ["own faces"] and out["own_calls"] == 1
    assert out["same"] == 1 and out["own_calls_after"] == 1  # the child's photo: the child's one face
