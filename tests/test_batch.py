"""``avatar --batch`` in worker processes (digitaltwin_jax/batch.py): the same files as one process,
whatever the worker and order; failures recorded; resumable."""
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from digitaltwin_jax import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def test_two_workers_write_what_one_process_writes_and_resume(tmp_path, monkeypatch):
    from digitaltwin_jax.pipeline import AvatarConfig, reconstruct_file

    monkeypatch.setenv("DIGITALTWIN_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "a.png")
    im = Image.open(EXAMPLE).convert("RGB")
    im.transpose(Image.FLIP_LEFT_RIGHT).resize((448, 448)).save(src / "b.png")  # another photo
    (src / "c.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    args = ["avatar", "--batch", str(src), "-o", str(out), "--texture-size", "64", "--shape-source", "template",
            "--workers", "2"]
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    report = json.loads((out / "batch_report.json").read_text())
    assert report["done"] == 2 and list(report["failed"]) == ["c.jpg"]
    assert report["failed"]["c.jpg"]["exit_code"] == cli.EXIT_UNREADABLE
    # reference: each photo reconstructed alone in this process, in the opposite order
    config = AvatarConfig(texture_size=64, shape_source="template")
    for name in ("b", "a"):
        ref = tmp_path / "ref" / name
        reconstruct_file(src / f"{name}.png", ref, config=config)
        for f in ("head.obj", "diffuse.png", "head.glb", "preview.png"):
            assert (out / name / f).read_bytes() == (ref / f).read_bytes(), (name, f)
        got = json.loads((out / name / "report.json").read_text())
        want = json.loads((ref / "report.json").read_text())
        np.testing.assert_array_equal(got["landmarks_2d"], want["landmarks_2d"])
        assert got["landmark_reprojection_rmse_px"] == want["landmark_reprojection_rmse_px"]
    # resume: a removed folder is redone, the finished one is not touched
    stamp = (out / "a" / "report.json").stat().st_mtime_ns
    shutil.rmtree(out / "b")
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    report = json.loads((out / "batch_report.json").read_text())
    assert report["done"] == 1 and report["skipped_already_finished"] == 1
    assert (out / "a" / "report.json").stat().st_mtime_ns == stamp
    assert (out / "b" / "head.obj").read_bytes() == (tmp_path / "ref" / "b" / "head.obj").read_bytes()


def test_default_workers_and_bad_counts():
    from digitaltwin_jax.batch import avatars_local, default_workers

    assert default_workers(1) == 1 and default_workers(0) == 1
    assert 1 <= default_workers(1000) <= 1000
    try:
        avatars_local([], workers=0)
    except ValueError as exc:
        assert "workers" in str(exc)
    else:
        raise AssertionError("workers=0 accepted")
    assert cli.main(["avatar", "--batch", ".", "--workers", "0"]) == cli.EXIT_USAGE


def test_worker_sets_single_threaded_blas_before_numpy_loads():
    import subprocess
    import sys

    code = ("import os, pickle, sys\n"
            "os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
            "import digitaltwin_jax.batch as b\n"
            "assert 'numpy' not in sys.modules, 'numpy loaded before the worker could set its threads'\n"
            "b._init_worker(pickle.dumps(dict), b.WORKER_ENV)\n"
            "assert os.environ['OPENBLAS_NUM_THREADS'] == '1' and b._WORKER_ONE == {}\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
