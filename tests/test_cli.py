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


def test_fast_exit_only_where_nothing_keeps_running():
    """cli.run ends single avatar commands with os._exit (flushed streams; the test above checks the
    code and message arrive); batches (worker processes, Ray) and other commands exit normally."""
    assert cli._leaves_nothing_running(["avatar", "a.jpg", "-o", "out"])
    assert cli._leaves_nothing_running(["avatar", "a.jpg", "b.jpg", "--same-camera"])
    for argv in (["avatar", "--batch", "photos/"], ["avatar", "--bat", "photos/"], ["avatar", "--batch=photos/"],
                 ["avatar", "--batch", "photos/", "--ray"], ["avatar", "a.jpg", "--workers", "2"],
                 ["synth", "--count", "3"], ["regressor", "build"], [], ["--help"]):
        assert not cli._leaves_nothing_running(argv), argv


def test_run_reports_a_bad_command_line_once(capsys):
    """cli.run re-reads argv to choose how to exit; argparse's message must still appear only once."""
    with pytest.raises(SystemExit) as e:
        cli.run(["avatar", "--texture-size"])
    assert e.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("expected one argument") == 1, err


def test_batch_skips_failures_and_resumes(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    import jax

    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "cache"))
    # earlier tests may have compiled the same solver in this process; without clearing the in-memory
    # caches nothing new is compiled and the persistent cache is (rightly) not written
    jax.clear_caches()
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


# --------------------------------------------------------------------------------------------------
# batch output names and overwrite safety (the expensive reconstruction is stubbed out)
# --------------------------------------------------------------------------------------------------
def _stub_avatar_one(calls):
    def one(photo, outdir, args, model_cache):
        import json

        calls.append((photo.name, outdir.name))
        outdir.mkdir(parents=True, exist_ok=args.overwrite)
        (outdir / "report.json").write_text(json.dumps({"photo": photo.name}))
        return {"landmark_rmse_px": 0.0}

    return one


def test_batch_photos_sharing_a_stem_get_distinct_folders(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(cli, "_avatar_one", _stub_avatar_one(calls))
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a.jpg", "a.png", "b.png", "A_b.jpeg"):
        (src / name).write_bytes(b"stub")
    out = tmp_path / "out"
    assert cli.main(["avatar", "--batch", str(src), "-o", str(out), "--workers", "1"]) == cli.EXIT_OK
    # the rule: the stem when unique, stem_ext for every photo whose stem is shared
    expect = {"a_jpg": "a.jpg", "a_png": "a.png", "b": "b.png", "A_b": "A_b.jpeg"}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(expect)
    for folder, photo in expect.items():
        assert json.loads((out / folder / "report.json").read_text())["photo"] == photo
    # resume: all four are finished, nothing is redone
    calls.clear()
    assert cli.main(["avatar", "--batch", str(src), "-o", str(out), "--workers", "1"]) == cli.EXIT_OK
    assert calls == []
    assert json.loads((out / "batch_report.json").read_text())["skipped_already_finished"] == 4


def test_batch_name_clash_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(cli, "_avatar_one", _stub_avatar_one(calls))
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a.jpg", "a.png", "a_jpg.png"):
        (src / name).write_bytes(b"stub")
    assert cli.main(["avatar", "--batch", str(src), "-o", str(tmp_path / "out")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "a.jpg, a_jpg.png -> a_jpg" in err and "rename" in err
    assert calls == [] and not (tmp_path / "out").exists()


def test_batch_output_names_rule():
    from pathlib import Path as P

    names = cli.batch_output_names([P("d/x.jpg"), P("d/X.png"), P("d/y.tif"), P("d/y.TIF.png")])
    assert names == {P("d/x.jpg"): "x_jpg", P("d/X.png"): "X_png", P("d/y.tif"): "y", P("d/y.TIF.png"): "y.TIF"}
    with pytest.raises(ValueError, match=r"a\.JPG, a\.jpg -> a_JPG"):
        cli.batch_output_names([P("a.JPG"), P("a.jpg")])


def _tiny_avatar():
    from digitaltwin_jax.pipeline import Avatar

    v = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]], np.float32)
    return Avatar(
        vertices=v, neutral_vertices=v, faces=np.array([[0, 1, 2]]), uvs=np.array([[0.0, 0], [1, 0], [0, 1]]),
        uv_faces=np.array([[0, 1, 2]]), expression_names=("jawOpen",), expression_weights=np.array([0.5], np.float32),
        expression_basis=np.zeros((1, 3, 3), np.float32), texture=np.full((16, 16, 3), 200, np.uint8),
        texture_confidence=np.ones((16, 16), np.float32), K=np.eye(3), rotation=np.eye(3), translation=np.zeros(3),
        landmarks_2d=np.zeros((68, 2)), landmarks_3d=np.zeros((68, 3)), landmark_errors_px=np.zeros(68),
        image_size=(32, 32), timings={}, info={},
    )


def _old_output(tmp_path):
    out = tmp_path / "root" / "me"
    out.mkdir(parents=True)
    (out / "head.obj").write_text("old avatar")
    return out


def test_overwrite_swaps_complete_folders(tmp_path, monkeypatch):
    import pathlib

    from digitaltwin_jax.pipeline import write_avatar

    out = _old_output(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_avatar(_tiny_avatar(), out)
    # record every rename: the old folder must be moved aside (not deleted) before the new one
    # is renamed into place, and the new one must be complete when it is
    renames = []
    real_rename = pathlib.Path.rename

    def spy(self, target):
        renames.append((self.name, pathlib.Path(target).name, sorted(p.name for p in self.iterdir()),
                        out.exists()))
        return real_rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", spy)
    write_avatar(_tiny_avatar(), out, overwrite=True)
    assert len(renames) == 2
    (old_src, old_dst, old_files, _), (new_src, new_dst, new_files, out_there) = renames
    assert old_src == "me" and old_dst.endswith(".old") and old_files == ["head.obj"]
    assert new_dst == "me" and new_files == ["diffuse.png", "head.glb", "head.mtl", "head.obj", "report.json"]
    assert not out_there  # moved aside, the name is free for the rename
    from digitaltwin_jax.io import read_obj

    np.testing.assert_allclose(read_obj(out / "head.obj").vertices, _tiny_avatar().vertices)
    assert sorted(p.name for p in out.parent.iterdir()) == ["me"]  # no temp or old folder left


def test_overwrite_failure_keeps_the_old_avatar(tmp_path, monkeypatch):
    import pathlib

    import digitaltwin_jax.io.gltf as gltf
    from digitaltwin_jax.pipeline import write_avatar

    out = _old_output(tmp_path)
    # 1) failure while writing the new files: the old folder is never touched
    with monkeypatch.context() as m:
        m.setattr(gltf, "write_glb", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            write_avatar(_tiny_avatar(), out, overwrite=True)
    assert (out / "head.obj").read_text() == "old avatar"
    assert sorted(p.name for p in out.parent.iterdir()) == ["me"]
    # 2) failure of the final rename (new -> place): the old folder is renamed back
    real_rename = pathlib.Path.rename

    def failing(self, target):
        if pathlib.Path(target) == out and not self.name.endswith(".old"):
            raise OSError("rename failed")
        return real_rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        write_avatar(_tiny_avatar(), out, overwrite=True)
    assert (out / "head.obj").read_text() == "old avatar"
    assert sorted(p.name for p in out.parent.iterdir()) == ["me"]


def test_cli_import_is_lazy_and_public_names_still_resolve():
    # `digitaltwin --help` must not pay for JAX; the package's public names still work when used
    code = ("import sys, digitaltwin_jax.cli as c\n"
            "assert 'jax' not in sys.modules, 'jax imported by the CLI module'\n"
            "assert c.main(['--help']) == 0\n"
            "assert 'jax' not in sys.modules\n"
            "import digitaltwin_jax as d\n"
            "m = d.load_head_model('low')\n"
            "assert d.head_shape is d.model.head_model.head_shape and m.vertices.shape[1] == 3\n"
            "assert 'load_head_model' in dir(d)\n"
            "try:\n    d.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(3)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "avatar" in r.stdout  # the help text was printed


def test_tune_process_memory_reports_what_it_applied():
    """The command's memory settings: glibc mallopt on Linux and NumPy's huge-page hint off (checked
    through NumPy's own getter: _set_madvise_hugepage returns the previous value)."""
    import platform

    import numpy as np

    applied = cli.tune_process_memory()
    assert set(applied) == {"mallopt", "numpy_hugepage_off"}
    setter = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        assert applied["numpy_hugepage_off"]
        assert setter(True) is False  # it was off; NumPy's default (on) is back for the other tests
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert applied["mallopt"]


def test_quick_compile_sets_the_xla_level_only_before_jax_and_only_once():
    script = (
        "import os, sys\n"
        "from digitaltwin_jax import cli\n"
        "os.environ.pop('XLA_FLAGS', None)\n"
        "a = cli.quick_compile(); f1 = os.environ['XLA_FLAGS']\n"
        "b = cli.quick_compile(); f2 = os.environ['XLA_FLAGS']\n"
        "os.environ['XLA_FLAGS'] = '--xla_backend_optimization_level=2 --foo'\n"
        "c = cli.quick_compile(); f3 = os.environ['XLA_FLAGS']\n"
        "os.environ['XLA_FLAGS'] = '--foo'\n"
        "import jax\n"
        "d = cli.quick_compile(); f4 = os.environ['XLA_FLAGS']\n"
        "print(a, b, c, d); print(f1); print(f2); print(f3); print(f4)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    flags, f1, f2, f3, f4 = r.stdout.strip().splitlines()
    assert flags == "True False False False"
    assert f1 == f2 == "--xla_backend_optimization_level=0"  # set once, not appended twice
    assert f3 == "--xla_backend_optimization_level=2 --foo"  # the user's own level wins
    assert f4 == "--foo"  # JAX already imported: left alone
