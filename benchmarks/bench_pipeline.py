"""Avatar speed on the example photo (issue 17 targets): in process, the command, the batch, memory.

Rows with ``goal`` / ``measured`` / ``limit`` are the issue's targets; ``benchmarks/run_all.py`` prints
them as one pass/fail table.  Every number comes from this run, on this machine:

* warm, in process: ``reconstruct`` + ``write_avatar`` of the example photo at a 2048 texture, after
  a first call that loads the models and compiles (best of 3); ``texture`` is the texture stage
  (``build_texture`` plus the face-region mask), ``write`` is OBJ + MTL + PNG + GLB + preview + report;
* the command (``python -m digitaltwin_jax avatar``), a fresh process: on an empty compilation cache
  (what a first-time user waits for) and on the cache that run left (every later run);
* ``digitaltwin --help`` (``python -m digitaltwin_jax --help``): the import cost of the command line;
* ``--batch`` throughput on 2048 textures with the default workers (one per CPU): after an untimed
  2-photo batch (it compiles the workers' programs), two batches of ``n1`` and ``n2`` photos (copies of the example, flipped / rescaled so they differ) on a warm
  compilation cache; photos/s = ``(n2 - n1) / (wall2 - wall1)`` (the worker start-up, paid once per
  batch, cancels), and the whole ``n2`` batch's photos/s including start-up in the notes;
* peak RSS of one avatar: VmHWM of the empty-cache command's process (Linux ``/proc``) plus the peak RSS of
  its front-end helper process (``getrusage(RUSAGE_CHILDREN)``; the two overlap in time, so the sum
  bounds their joint peak).

No baseline library makes avatars; the rows are measured against the issue's targets.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.png"
AREA = "pipeline"


def _env(cache: Path) -> dict:
    return dict(os.environ, DIGITALTWIN_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))


# The peak-RSS run executes the command's main() in a ``python -c`` wrapper that then reads VmHWM
# from /proc/self/status: the high-water mark of that program's own memory map (ru_maxrss would also
# count the benchmark process's memory that fork copies into the child before exec).  It calls main()
# rather than the program (cli.run), which ends the process with os._exit before the wrapper could read.
def _cli(args, cache: Path, with_rss: bool = False):
    """Wall seconds of ``python -m digitaltwin_jax ARGS`` (and its peak RSS in GiB with ``with_rss``)."""
    t = time.perf_counter()
    if with_rss:
        rss_file = cache.parent / "rss_kib.txt"
        wrapper = ("import sys\n"
                   f"out = {str(rss_file)!r}\n"
                   "from digitaltwin_jax.cli import main\n"
                   "code = main(sys.argv[1:])\n"
                   "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
                   "import resource\n"
                   "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
                   "open(out, 'w').write(f'{hwm[0]} {kids}')\n"
                   "sys.exit(code)\n")
        cmd = [sys.executable, "-c", wrapper, *args]
    else:
        cmd = [sys.executable, "-m", "digitaltwin_jax", *args]
    r = subprocess.run(cmd, env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"digitaltwin {' '.join(args)} exited {r.returncode}: {r.stderr.decode()[-2000:]}")
    if not with_rss:
        return wall
    own, kids = (int(v) for v in rss_file.read_text().split())
    return wall, own / 1024 ** 2, kids / 1024 ** 2  # KiB -> GiB


def _stages(d: dict) -> str:
    return "stages s: " + ", ".join(f"{k} {v:.2f}" for k, v in d.items())


def _goal(goal: str, value: float, limit: float, unit: str = "s", better: str = "lower", **row) -> dict:
    ms = value * 1e3 if unit == "s" else None
    return dict(area=AREA, case=goal, ours_ms=ms, goal=goal, measured=value, limit=limit, unit=unit, better=better,
                target=f"{'<=' if better == 'lower' else '>='} {limit:g} {unit}", **row)


def _photos(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    im = Image.open(EXAMPLE).convert("RGB")
    for i in range(n):
        v = im.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else im
        side = 512 - 16 * (i // 2)
        v.resize((side, side), Image.LANCZOS).save(folder / f"p{i:02d}.png")


def run(quick: bool = False) -> list[dict]:
    size = 512 if quick else 2048
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        tex = ["--texture-size", str(size)]
        # the command: empty cache, then the cache it left
        wall0, rss_own, rss_helper = _cli(["avatar", str(EXAMPLE), "-o", str(tmp / "a"), *tex], cache, with_rss=True)
        rss_gb = rss_own + rss_helper  # the two run at the same time: the sum bounds their joint peak
        st0 = json.loads((tmp / "a" / "report.json").read_text())["timings_s"]
        wall1 = _cli(["avatar", str(EXAMPLE), "-o", str(tmp / "b"), *tex], cache)
        st1 = json.loads((tmp / "b" / "report.json").read_text())["timings_s"]
        rows.append(_goal(f"command, empty compilation cache, tex {size}", wall0, 8.0,
                          notes=_stages(st0) + "; wall includes Python start and imports"))
        rows.append(_goal(f"command, warm compilation cache, tex {size}", wall1, 3.0, notes=_stages(st1)))
        rows.append(_goal("peak RSS of one avatar (command, empty cache)", rss_gb, 1.5, unit="GB",
                          notes=f"VmHWM of the command's process (Linux /proc) {rss_own:.2f} GiB + peak RSS of its "
                                f"front-end helper process {rss_helper:.2f} GiB (getrusage of the children)"))
        helps = [_cli(["--help"], cache) for _ in range(3)]
        rows.append(_goal("digitaltwin --help", min(helps), 0.3, notes="python -m digitaltwin_jax --help, best of 3"))

        # in process, warm
        from digitaltwin_jax.io.images import read_image
        from digitaltwin_jax.pipeline import AvatarConfig, reconstruct, write_avatar

        image = read_image(EXAMPLE)
        cfg = AvatarConfig(texture_size=size)
        write_avatar(reconstruct(image, config=cfg), tmp / "w0", photo=image)  # load models, compile
        best = None
        for i in range(1 if quick else 3):
            t = time.perf_counter()
            av = reconstruct(image, config=cfg)
            t_rec = time.perf_counter() - t
            t = time.perf_counter()
            write_avatar(av, tmp / f"w{i + 1}", photo=image)
            t_write = time.perf_counter() - t
            if best is None or t_rec + t_write < best[0] + best[1]:
                best = (t_rec, t_write, dict(av.timings))
        t_rec, t_write, timings = best
        rows.append(_goal(f"reconstruct + write_avatar, warm, in process, tex {size}", t_rec + t_write, 1.0,
                          notes=f"reconstruct {t_rec:.2f} s + write {t_write:.2f} s; " + _stages(timings)))
        rows.append(_goal(f"texture stage (build_texture), warm, tex {size}", timings["texture"], 0.5,
                          notes="projection, de-lighting, bank, band blend, padding; UV pieces cached per process"))
        rows.append(_goal("write OBJ + GLB + PNG + preview + report", t_write, 0.3,
                          notes=f"meshes + diffuse PNG {timings.get('write_meshes', float('nan')):.2f} s, preview "
                                f"{timings.get('preview', float('nan')):.2f} s (256 px panels; PNGs: Up filter, parallel deflate)"))

        # batch throughput, default workers, warm compilation cache: the batch workers compile at
        # XLA's default level (the photo commands at level 0, cli.quick_compile), so one untimed
        # batch fills the cache with their programs first
        n1, n2 = (2, 4) if quick else (4, 12)
        _photos(tmp / "batch_warm", 2)
        _cli(["avatar", "--batch", str(tmp / "batch_warm"), "-o", str(tmp / "out_warm"), *tex], cache)
        shutil.rmtree(tmp / "out_warm")
        walls = []
        for n in (n1, n2):
            src, out = tmp / f"batch{n}", tmp / f"out{n}"
            _photos(src, n)
            walls.append(_cli(["avatar", "--batch", str(src), "-o", str(out), *tex], cache))
            shutil.rmtree(out)
        if walls[1] <= walls[0]:
            raise RuntimeError(f"the {n2}-photo batch ({walls[1]:.1f} s) was not slower than the {n1}-photo batch "
                               f"({walls[0]:.1f} s): the throughput cannot be measured (a cold cache, or a busy machine)")
        rate = (n2 - n1) / (walls[1] - walls[0])
        from digitaltwin_jax.batch import default_workers

        rows.append(_goal(f"avatar --batch throughput, tex {size}", rate, 1.5, unit="photos/s", better="higher",
                          notes=f"{default_workers(n2)} workers; ({n2} - {n1}) photos / ({walls[1]:.1f} - "
                                f"{walls[0]:.1f}) s; whole {n2}-photo batch incl. start-up {n2 / walls[1]:.2f} photos/s"))
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
