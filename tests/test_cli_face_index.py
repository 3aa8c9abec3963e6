"""``--face-index`` out of range (issue 28): a one-line error naming the faces found, exit code 9, no
traceback, nothing written."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax import cli
from digitaltwin_jax.frontend.types import FaceIndexError, pick_face

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """The two example portraits side by side on one grey canvas (two real faces, different sizes)."""
    a = Image.open(EXAMPLES / "astronaut.png").convert("RGB")
    b = Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB")
    canvas = Image.new("RGB", (a.width + b.width + 40, max(a.height, b.height)), (128, 128, 128))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 40, 0))
    p = tmp_path_factory.mktemp("photos") / "two_faces.png"
    canvas.save(p)
    return p


@pytest.mark.parametrize("index", ["5", "-1", "2"])
def test_out_of_range_face_index_is_a_clear_error(two_faces, tmp_path, index):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "digitaltwin_jax", "avatar", str(two_faces), "-o", str(out),
                        "--face-index", index], capture_output=True, text=True, timeout=300)
    assert r.returncode == cli.EXIT_FACE_INDEX == 9, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert f"face index {index} is out of range: 2 face(s) found" in lines[0]
    assert "numbered from 0" in lines[0] and "0 to 1" in lines[0]
    assert not out.exists()


def test_pick_face_rules():
    faces = ["big", "small"]
    assert pick_face(faces, 0) == "big" and pick_face(faces, 1) == "small"
    for bad in (2, -1, -2):
        with pytest.raises(FaceIndexError) as e:
            pick_face(faces, bad)
        assert (e.value.index, e.value.count) == (bad, 2)
    import pickle

    err = pickle.loads(pickle.dumps(FaceIndexError(3, 1)))
    assert isinstance(err, ValueError) and "choose 0" in str(err)


def test_help_lists_exit_code_9(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["avatar", "--help"])
    assert "9 --face-index" in capsys.readouterr().out.replace("\n", " ")
