"""``digitaltwin avatar --batch ... --ray`` (local Ray, 2 CPUs): the avatars of the local path,
failures recorded per photo, a path list as input, resume by whole folders."""
import json
import shutil
from pathlib import Path

import numpy as np

from digitaltwin_jax import cli
from digitaltwin_jax.io.obj import read_obj

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def _numbers(report: dict) -> dict:
    """The numeric results of a report.json (timings and versions left out)."""
    return {k: v for k, v in report.items() if not k.startswith("timings") and k not in ("versions", "photo")}


def test_ray_batch_matches_local_batch(ray_local, tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "a.png")
    (src / "b.jpg").write_bytes(b"not a jpeg")
    listing = tmp_path / "photos.txt"
    listing.write_text("# two photos\nphotos/a.png\n\nphotos/b.jpg\n")
    opts = ["--texture-size", "64"]
    assert cli.main(["avatar", "--batch", str(src), "-o", str(tmp_path / "local"), *opts]) == cli.EXIT_BATCH_PARTIAL
    ray_out = tmp_path / "ray"
    args = ["avatar", "--batch", str(listing), "-o", str(ray_out), "--ray", "local", "--workers", "2", *opts]
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    local_rep = json.loads((tmp_path / "local" / "batch_report.json").read_text())
    ray_rep = json.loads((ray_out / "batch_report.json").read_text())
    assert ray_rep["done"] == 1 and list(ray_rep["failed"]) == ["b.jpg"]
    assert ray_rep["failed"]["b.jpg"]["exit_code"] == cli.EXIT_UNREADABLE == local_rep["failed"]["b.jpg"]["exit_code"]
    assert not (ray_out / "b").exists()
    # the same avatar: vertices, texture, report numbers
    a, b = read_obj(tmp_path / "local" / "a" / "head.obj"), read_obj(ray_out / "a" / "head.obj")
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert (tmp_path / "local" / "a" / "diffuse.png").read_bytes() == (ray_out / "a" / "diffuse.png").read_bytes()
    ra = json.loads((tmp_path / "local" / "a" / "report.json").read_text())
    rb = json.loads((ray_out / "a" / "report.json").read_text())
    assert _numbers(ra) == _numbers(rb)
    # resume: the finished folder is kept, the broken photo retried (and failing again)
    stamp = (ray_out / "a" / "report.json").stat().st_mtime_ns
    assert cli.main(args) == cli.EXIT_BATCH_PARTIAL
    rep = json.loads((ray_out / "batch_report.json").read_text())
    assert rep["done"] == 0 and rep["skipped_already_finished"] == 1 and list(rep["failed"]) == ["b.jpg"]
    assert (ray_out / "a" / "report.json").stat().st_mtime_ns == stamp


def test_batch_list_errors_are_usage_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert cli.main(["avatar", "--batch", str(empty), "-o", str(tmp_path / "o")]) == cli.EXIT_USAGE
    assert "lists no photos" in capsys.readouterr().err
    assert cli.main(["avatar", "--batch", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == cli.EXIT_USAGE
    assert "neither a folder nor a file" in capsys.readouterr().err
    assert cli.main(["avatar", "x.png", "--ray"]) == cli.EXIT_USAGE
    assert "--ray and --workers go with --batch" in capsys.readouterr().err
