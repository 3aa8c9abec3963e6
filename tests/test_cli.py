"""The avatar command's bad-input behaviour: clear messages, distinct exit codes, nothing half written."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitaltwin_jax import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def run_cli(*args, tmp_path):
    # in-process (fast) ...
    return cli.main(list(args))


def test_unreadable_file_exit_code(tmp_path, capsys):
    missing = tmp_path / "nope.jpg"
    assert run_cli("avatar", str(missing), "-o", str(tmp_path / "out"), tmp_path=tmp_path) == cli.EXIT_UNREADABLE
    assert "nope.jpg" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_not_an_image_exit_code(tmp_path, capsys):
    p = tmp_path / "notes.png"
    p.write_text("this is text, not a PNG")
    assert run_cli("avatar", str(p), "-o", str(tmp_path / "out"), tmp_path=tmp_path) == cli.EXIT_UNREADABLE
    assert "notes.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_no_face_exit_code(tmp_path, capsys):
    rng = np.random.default_rng(0)
    p = tmp_path / "noise.png"
    Image.fromarray((rng.uniform(size=(300, 300, 3)) * 40 + 100).astype(np.uint8)).save(p)
    assert run_cli("avatar", str(p), "-o", str(tmp_path / "out"), tmp_path=tmp_path) == cli.EXIT_NO_FACE
    assert "no face" in capsys.readouterr().err.lower()
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [p]  # no temp folders left behind


def test_face_too_small_exit_code(tmp_path, capsys):
    im = Image.open(EXAMPLE).convert("RGB")
    small = im.resize((im.width // 6, im.height // 6))
    canvas = Image.new("RGB", (1200, 1200), (128, 128, 128))
    canvas.paste(small, (50, 50))
    p = tmp_path / "tiny.png"
    canvas.save(p)
    code = run_cli("avatar", str(p), "-o", str(tmp_path / "out"), tmp_path=tmp_path)
    err = capsys.readouterr().err.lower()
    assert code in (cli.EXIT_FACE_TOO_SMALL, cli.EXIT_NO_FACE), err
    if code == cli.EXIT_FACE_TOO_SMALL:
        assert "too small" in err and "minimum" in err
    assert not (tmp_path / "out").exists()


def test_usage_errors():
    assert cli.main(["avatar"]) == cli.EXIT_USAGE
    assert cli.main(["avatar", "x.png", "--resolution", "huge"]) == cli.EXIT_USAGE
    assert cli.main(["avatar", "x.png", "--texture-size", "4"]) == cli.EXIT_USAGE


def test_module_entry_point_reports_exit_code(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    r = subprocess.run([sys.executable, "-m", "digitaltwin_jax", "avatar", str(p), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == cli.EXIT_UNREADABLE, r.stderr
    assert "broken.jpg" in r.stderr
    assert "Traceback" not in r.stderr


def test_batch_skips_failures_and_resumes(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "a.png")
    (src / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    args = ["avatar", "--batch", str(src), "-o", str(out), "--texture-size", "64"]
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    report = json.loads((out / "batch_report.json").read_text())
    assert report["done"] == 1 and list(report["failed"]) == ["b.jpg"]
    assert report["failed"]["b.jpg"]["exit_code"] == cli.EXIT_UNREADABLE
    assert (out / "a" / "report.json").exists() and not (out / "b").exists()
    stamp = (out / "a" / "report.json").stat().st_mtime_ns
    # resume: the finished photo is not redone, the broken one is retried and fails again
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    report = json.loads((out / "batch_report.json").read_text())
    assert report["done"] == 0 and report["skipped_already_finished"] == 1
    assert (out / "a" / "report.json").stat().st_mtime_ns == stamp
    assert any((tmp_path / "cache").iterdir())  # the persistent compilation cache was written
