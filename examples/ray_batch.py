"""A batch of avatars on Ray (a local instance here; a cluster takes an address instead).

The same as the command ``digitaltwin avatar --batch PHOTO_DIR -o OUT_ROOT --ray`` (``--ray
HEAD:6379`` for a cluster, see the docs page "Beyond one machine"), from Python:
``ray_avatars.avatars_on_ray(jobs)`` runs ``pipeline.reconstruct_file`` for every ``(photo, folder)``
job on Ray actors (each loads the models and compiles the solver once), records every photo's
failure instead of stopping, and skips folders that are already complete when run again.

Usage::

    pip install ".[distributed]"
    python examples/ray_batch.py PHOTO_DIR [--out out/ray_batch] [--workers 2] [--texture-size 1024]

Without a folder it makes one with ``--copies`` copies of the example photo and a file that is not
an image (to show a failure being recorded).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def demo_folder(copies: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ray_photos_"))
    for k in range(copies):
        shutil.copy(EXAMPLES / "astronaut.png", folder / f"astronaut_{k}.png")
    (folder / "notes.png").write_text("not an image")
    return folder


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo_dir", nargs="?", help="folder of photos (default: copies of the example photo)")
    ap.add_argument("--out", default="out/ray_batch")
    ap.add_argument("--workers", type=int, default=None, help="Ray actors (default: one per CPU)")
    ap.add_argument("--copies", type=int, default=2, help="demo folder: copies of the example photo")
    ap.add_argument("--texture-size", type=int, default=1024)
    ap.add_argument("--address", default="local", help='"local" or a cluster address (HOST:PORT, auto)')
    args = ap.parse_args(argv)

    from digitaltwin_jax.pipeline import AvatarConfig
    from digitaltwin_jax.ray_avatars import avatars_on_ray

    photos = Path(args.photo_dir) if args.photo_dir else demo_folder(args.copies)
    out = Path(args.out)
    jobs = [(p, out / p.stem) for p in sorted(photos.iterdir()) if p.is_file()]

    # Ray starts here (an already running instance, e.g. in a notebook, is reused).
    results = avatars_on_ray(jobs, AvatarConfig(texture_size=args.texture_size), overwrite=True,
                             address=args.address, workers=args.workers, progress=False)
    for photo, (status, value) in results.items():
        detail = f"landmark RMSE {value['landmark_rmse_px']:.2f} px" if status == "ok" else repr(value)
        print(f"{Path(photo).name:20s} {status:5s} {detail}")
    return {"results": results, "jobs": jobs, "out": out}


if __name__ == "__main__":
    main()
