"""Command line: ``digitaltwin avatar PHOTO -o OUTDIR`` (also ``python -m digitaltwin_jax ...``).

Argument parsing, progress and exit codes only; the work is in :mod:`digitaltwin_jax.pipeline`.

Exit codes (also listed by ``digitaltwin avatar --help``):
  0 success; 1 unexpected internal error; 2 bad command line; 3 unreadable file or not an image;
  4 no face found; 5 face too small; 6 fitting failed; 7 batch finished with some failed photos;
  8 the output cannot be written (exists without --overwrite, read-only, disk full); 9 --face-index is
  not among the faces found.

JAX compiles the fitting solver on first use (the cold-start cost).  The command keeps a persistent
compilation cache in ``$DIGITALTWIN_CACHE_DIR`` (default ``$XDG_CACHE_HOME/digitaltwin_jax/jax`` or
``~/.cache/digitaltwin_jax/jax``), so later runs reuse the compiled programs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_UNREADABLE, EXIT_NO_FACE, EXIT_FACE_TOO_SMALL, EXIT_FIT_FAILED, EXIT_BATCH_PARTIAL = range(8)
EXIT_OUTPUT = 8
EXIT_FACE_INDEX = 9
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def cache_dir() -> Path:
    """Folder of the persistent JAX compilation cache used by the command line."""
    env = os.environ.get("DIGITALTWIN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "digitaltwin_jax" / "jax"


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache, the texture stage's disk cache and the fit's
    exported-program store (application settings: only the CLI calls this)."""
    import jax

    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path  # read-only home: run without a cache
    if jax.config.jax_compilation_cache_dir != str(path):
        jax.config.update("jax_compilation_cache_dir", str(path))
        try:  # JAX opens the cache once per process: let a changed folder take effect
            from jax.experimental.compilation_cache import compilation_cache

            compilation_cache.reset_cache()
        except (ImportError, AttributeError):  # pragma: no cover - older/newer JAX layouts
            pass
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # the texture stage's UV-layout pieces (texture.cache) are kept beside the compiled programs
    from digitaltwin_jax.texture.cache import shared_cache

    shared_cache().directory = path / "texture"
    # and the traced Gauss-Newton solve (fitting.exported): a new process skips tracing it
    from digitaltwin_jax.fitting.exported import shared_store

    shared_store().directory = path / "exported"
    return path


def tune_process_memory() -> dict:
    """Memory settings for a process that makes avatars (application settings: the CLI and its batch
    workers call this; a library import changes nothing).

    * glibc ``mallopt``: arrays up to 1 GiB come from the heap and freed memory is kept
      (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``), so the texture stage's 16-50 MB temporaries are
      reused instead of being mapped and zero-filled again on every call;
    * NumPy's transparent-huge-page hint off: with the kernel's THP ``defrag=madvise`` setting, the
      first touch of each 2 MB page waits for compaction and zeroing.

    Measured on 2 idle cores (build_texture at 2048 on the example photo, fresh process / again):
    default 1.11-1.44 s / 0.55-0.60 s; both settings 0.76 s / 0.50-0.53 s.  Returns what was applied
    (an unavailable setting, e.g. no glibc, is skipped and reported ``False``)."""
    applied = {"mallopt": False, "numpy_hugepage_off": False}
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        applied["mallopt"] = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        pass
    import numpy as np

    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)
        applied["numpy_hugepage_off"] = True
    return applied


def quick_compile() -> bool:
    """XLA's backend optimisation level 0 for this process's compilations (application setting: the
    single-photo command calls it before JAX is imported; a library import changes nothing).

    A first run (empty compilation cache) spends most of its time compiling the Gauss-Newton solve;
    level 0 skips LLVM's expensive passes.  Measured on 2 cores (the example photo): the empty-cache
    command 8.37-8.45 s -> 7.16-7.32 s; the fit runs 0.029 -> 0.055 s in process, and the warm
    command showed no difference beyond noise (3.07-3.47 s at the default level, 2.76-3.22 s at 0).
    The fitted numbers were identical.  Batch workers keep the default level (their compilation is
    paid once per worker and their fits repeat).  Returns whether the flag was added: not when
    ``XLA_FLAGS`` already sets the level, or JAX is already imported (its backend may have read the
    flags already, and a library caller's settings are its own).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags or "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    return True


def _worker_init() -> None:
    """A batch worker's initialiser: the command's caches and memory settings."""
    tune_process_memory()
    enable_compilation_cache()


def _error_code(exc: BaseException) -> int:
    from digitaltwin_jax import errors

    if isinstance(exc, errors.ImageReadError):
        return EXIT_UNREADABLE
    if isinstance(exc, errors.FaceIndexError):
        return EXIT_FACE_INDEX
    if isinstance(exc, errors.FaceTooSmallError):
        return EXIT_FACE_TOO_SMALL
    if isinstance(exc, errors.NoFaceError):
        return EXIT_NO_FACE
    if isinstance(exc, errors.FitError):
        return EXIT_FIT_FAILED
    if isinstance(exc, errors.OutputError):
        return EXIT_OUTPUT
    return EXIT_INTERNAL


def _avatar_config(args):
    from digitaltwin_jax.pipeline import AvatarConfig

    return AvatarConfig(
        resolution=args.resolution,
        texture_size=args.texture_size,
        face_index=args.face_index,
        landmarks=args.landmarks,
        seed=args.seed,
        shape_source=args.shape_source,
        template=args.template,
    )


def _avatar_one(photo: Path, outdir: Path, args, model_cache: dict, front_end=None) -> dict:
    """One avatar; ``front_end``: a running :class:`~digitaltwin_jax.frontend.process.FrontEndProcess`
    for ``photo`` whose results replace the pipeline's detect / embed stages."""
    from digitaltwin_jax.pipeline import default_stages, reconstruct_file

    config = _avatar_config(args)
    stages = None
    if front_end is not None:
        stages = front_end.stages(default_stages(config))
    info = reconstruct_file(photo, outdir, config=config, overwrite=args.overwrite, stages=stages)
    if front_end is not None and front_end.fallback is not None:
        info.setdefault("warnings", []).append(front_end.fallback)
    return info


def _cmd_avatar(args) -> int:
    if args.batch is None and not args.photo:
        print("error: give a PHOTO or --batch DIR", file=sys.stderr)
        return EXIT_USAGE
    if args.batch is not None and args.photo:
        print("error: give PHOTO(s) or --batch DIR, not both", file=sys.stderr)
        return EXIT_USAGE
    tune_process_memory()
    front_end = None
    if args.batch is None:
        quick_compile()  # one photo (or a few): compile time dominates a first run
    if args.batch is None and len(args.photo) == 1 and _front_end_worthwhile(args):
        # dlib's model loading (~0.5 s, GIL held) overlaps the imports below on another core; forked
        # before JAX is imported (see frontend.process)
        from digitaltwin_jax.frontend.process import start

        front_end = start(args.photo[0], args.face_index, args.landmarks)
    cache = enable_compilation_cache()
    if args.batch is not None:
        return _cmd_batch(args)
    if len(args.photo) > 1:
        return _cmd_photos(args, cache)
    photo = Path(args.photo[0])
    outdir = _outdir(args)
    t0 = time.perf_counter()
    try:
        info = _avatar_one(photo, outdir, args, {}, front_end=front_end)
    except Exception as exc:  # noqa: BLE001 - mapped to exit codes
        return _print_error(exc, _error_code(exc))
    _print_warnings(info)
    shape = info.get("shape_stage", {})
    guard = (f", guard factor {shape['guard_factor']:.2f} at embedding distance {shape['mahalanobis']:.1f}"
             f"{' (unlike the training renders: template shape)' if shape['guard_factor'] == 0 else ''}"
             if "guard_factor" in shape else "")
    if "trust" in shape:
        guard = (f", template {shape['template']}, regressor trust {shape['trust']:.2f}"
                 + (f" at embedding distance {shape['mahalanobis']:.1f}" if shape.get("mahalanobis") is not None else "")
                 + f", identity prior sigma {shape['identity_sigma']:.2f}")
    print(f"avatar of {photo} written to {outdir}/ in {time.perf_counter() - t0:.1f} s "
          f"(shape source {info.get('shape_source')}{guard}; landmark reprojection RMSE "
          f"{info['landmark_rmse_px']:.2f} px)")
    print(f"  look at {outdir / 'preview.png'}; load {outdir / 'head.glb'} in a glTF viewer "
          f"(compilation cache: {cache})")
    return EXIT_OK


def _outdir(args) -> Path:
    """The avatar's folder: ``-o``, else ``out/<stem of the first photo>``."""
    return Path(args.output) if args.output else Path("out") / Path(args.photo[0]).stem


def _front_end_worthwhile(args) -> bool:
    """Run the front end in a helper process: only when the command will get as far as detection
    (an existing output without --overwrite is refused first, in this process)."""
    return (args.overwrite or not _outdir(args).exists()) and Path(args.photo[0]).is_file()


def _print_error(exc: BaseException, code: int) -> int:
    """Print an avatar command's error (with the traceback only for an internal error); return its exit code."""
    print(f"error: {exc}", file=sys.stderr)
    if code == EXIT_INTERNAL:
        traceback.print_exc()
    return code


def _print_warnings(info: dict) -> None:
    """Print the report's warnings (every fallback the pipeline took) on stderr."""
    for w in info.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def _cmd_photos(args, cache) -> int:
    """Several photos of one person -> one avatar (:func:`digitaltwin_jax.pipeline.reconstruct_files`)."""
    import dataclasses

    from digitaltwin_jax.pipeline import reconstruct_files

    photos = [Path(p) for p in args.photo]
    outdir = _outdir(args)
    config = dataclasses.replace(_avatar_config(args), same_camera=True if args.same_camera else None, force=args.force)
    t0 = time.perf_counter()
    try:
        info = reconstruct_files(photos, outdir, config=config, overwrite=args.overwrite)
    except Exception as exc:  # noqa: BLE001 - mapped to exit codes; messages name the photo
        from digitaltwin_jax.multiview.shape import DifferentPeopleError

        return _print_error(exc, EXIT_USAGE if isinstance(exc, DifferentPeopleError) else _error_code(exc))
    _print_warnings(info)
    rmse = ", ".join(f"{name} {e:.2f} px" for name, e in info["photos"])
    print(f"avatar of {len(photos)} photos written to {outdir}/ in {time.perf_counter() - t0:.1f} s "
          f"(shape source {info.get('shape_source')}; landmark reprojection RMSE {rmse})")
    print(f"  look at {outdir / 'preview.png'}; load {outdir / 'head.glb'} in a glTF viewer (compilation cache: {cache})")
    return EXIT_OK


def batch_output_names(photos) -> dict:
    """Output folder name of each photo of a batch: ``{photo: name}``, deterministic.

    The rule: a photo's stem (``a.jpg`` -> ``a``) when no other photo of the batch has the same stem
    (compared case-insensitively, for case-insensitive file systems); otherwise ``stem_ext`` with
    the extension as written (``a.jpg``, ``a.png`` -> ``a_jpg``, ``a_png``).

    Raises:
      ValueError: two photos would still share a folder (e.g. ``a.jpg`` next to ``a_jpg.png``, or
        ``a.JPG`` next to ``a.jpg``); the message names them.
    """
    photos = list(photos)
    stems: dict = {}
    for p in photos:
        stems.setdefault(Path(p).stem.casefold(), []).append(p)
    names = {}
    for p in photos:
        p = Path(p)
        shared = len(stems[p.stem.casefold()]) > 1
        names[p] = f"{p.stem}_{p.suffix[1:]}" if shared else p.stem
    owners: dict = {}
    for p, name in names.items():
        owners.setdefault(name.casefold(), []).append(p)
    clashes = [v for v in owners.values() if len(v) > 1]
    if clashes:
        desc = "; ".join(f"{', '.join(q.name for q in v)} -> {names[v[0]]}" for v in clashes)
        raise ValueError(f"photos would share an output folder ({desc}); rename one of them")
    return names


def _cmd_batch(args) -> int:
    from tqdm import tqdm

    out_root = Path(args.output) if args.output else Path("out")
    try:
        photos = batch_photos(args.batch)
        names = batch_output_names(photos)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.ray is not None:
        return _cmd_batch_workers(args, photos, names, out_root, ray=True)
    from digitaltwin_jax.batch import default_workers

    todo = [p for p in photos if args.overwrite or not (out_root / names[p] / "report.json").exists()]
    if (args.workers if args.workers is not None else default_workers(len(todo))) > 1:
        return _cmd_batch_workers(args, photos, names, out_root, ray=False)
    failed, skipped, done, warned = {}, 0, 0, {}
    for photo in tqdm(photos, desc="avatars", unit="photo"):
        outdir = out_root / names[photo]
        if (outdir / "report.json").exists() and not args.overwrite:
            skipped += 1  # resume: finished outputs are complete (written by rename)
            continue
        try:
            info = _avatar_one(photo, outdir, args, {})
            done += 1
            if info.get("warnings"):
                warned[photo.name] = info["warnings"]
                for w in info["warnings"]:
                    tqdm.write(f"warning {photo.name}: {w}")
        except Exception as exc:  # noqa: BLE001 - reported, batch goes on
            failed[photo.name] = {"exit_code": _error_code(exc), "error": f"{type(exc).__name__}: {exc}"}
            tqdm.write(f"failed {photo.name}: {exc}")
    return _finish_batch(out_root, done, skipped, failed, warned)


def batch_photos(src) -> list:
    """The photos of ``--batch SRC``: the images in a folder (by extension, sorted), or the paths
    listed in a text file, one per line (relative paths are relative to the file's folder; blank
    lines and lines starting with ``#`` are skipped).  ValueError (a usage error) when there are none."""
    src = Path(src)
    if src.is_dir():
        photos = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {src}")
        return photos
    if not src.is_file():
        raise ValueError(f"--batch {src} is neither a folder nor a file listing photos")
    try:
        lines = src.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--batch {src} is not a readable text file listing photos ({exc})") from None
    photos = [p if p.is_absolute() else src.parent / p
              for p in (Path(ln.strip()) for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))]
    if not photos:
        raise ValueError(f"--batch {src} lists no photos")
    return photos


def _cmd_batch_workers(args, photos, names, out_root, *, ray: bool) -> int:
    """``--batch`` in worker processes that each load and compile once: on this machine
    (:mod:`digitaltwin_jax.batch`) or on Ray (:mod:`digitaltwin_jax.ray_avatars`); the same avatars and
    report as the one-process loop."""
    todo = [p for p in photos if args.overwrite or not (out_root / names[p] / "report.json").exists()]
    try:
        if ray:
            from digitaltwin_jax.ray_avatars import avatars_on_ray as run

            where = {"address": args.ray}
        else:
            from digitaltwin_jax.batch import avatars_local as run

            where = {}
        outcomes = {} if not todo else run([(p, out_root / names[p]) for p in todo], _avatar_config(args),
                                           overwrite=args.overwrite, workers=args.workers,
                                           init=_worker_init, **where)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, ConnectionError, ValueError) as exc:
        print(f"error: {'Ray' if ray else 'workers'}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    failed, warned, done = {}, {}, 0
    for p in todo:
        status, value = outcomes[str(p)]
        if status == "ok":
            done += 1
            if value.get("warnings"):
                warned[p.name] = value["warnings"]
        else:
            failed[p.name] = {"exit_code": _error_code(value), "error": f"{type(value).__name__}: {value}"}
            print(f"failed {p.name}: {value}", file=sys.stderr)
    return _finish_batch(out_root, done, len(photos) - len(todo), failed, warned)


def _finish_batch(out_root: Path, done: int, skipped: int, failed: dict, warned: dict) -> int:
    from digitaltwin_jax.io.atomic import atomic_write_text

    try:
        out_root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_root / "batch_report.json", json.dumps(
        {"done": done, "skipped_already_finished": skipped, "failed": failed, "warnings": warned}, indent=2))
    except OSError as exc:
        print(f"error: cannot write {out_root / 'batch_report.json'}: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    print(f"{done} done, {skipped} already finished, {len(failed)} failed (see {out_root / 'batch_report.json'})")
    return EXIT_BATCH_PARTIAL if failed else EXIT_OK


def _default_landmarks() -> str:
    from digitaltwin_jax.frontend.api import DEFAULT_LANDMARKS

    return DEFAULT_LANDMARKS


def build_parser() -> argparse.ArgumentParser:
    """The ``digitaltwin`` argument parser: ``avatar``, and ``synth`` / ``augment`` / ``regressor`` / ``build-model``, which hand over to their own."""
    ap = argparse.ArgumentParser(prog="digitaltwin", description="Single-photo 3D head avatars (Digital Twin, in JAX).")
    sub = ap.add_subparsers(dest="command", required=True)
    av = sub.add_parser(
        "avatar", help="photo in, textured head avatar out",
        description="Reconstruct a textured, animatable head avatar from one photo.",
        epilog="exit codes: 0 ok, 1 internal error, 2 usage, 3 unreadable file / not an image, "
               "4 no face, 5 face too small, 6 fitting failed, 7 batch with failures, 8 output not writable, "
               "9 --face-index not among the faces found",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    av.add_argument("photo", nargs="*", help="input photo (JPEG/PNG/...); several photos of one person make one "
                                             "avatar (shared head, texture fused from all photos)")
    av.add_argument("-o", "--output", help="output folder (default out/<photo name>; with --batch the root folder)")
    av.add_argument("--batch", metavar="DIR|LIST",
                    help="process every image in DIR (or every photo listed in the text file LIST, one "
                         "path per line) into OUTPUT/<stem> (resumable); photos sharing a "
                         "stem get OUTPUT/<stem>_<ext> each (a.jpg, a.png -> a_jpg, a_png)")
    av.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|ADDRESS",
                    help="with --batch: make the avatars on Ray, 'local' (this machine) or a cluster "
                         "address (HOST:6379 of `ray start --head`); needs the 'distributed' extra")
    av.add_argument("--workers", type=int, default=None,
                    help="with --batch: worker processes, each loading and compiling once (default: one per "
                         "CPU, at most one per photo; 1 = in this process); with --ray: Ray workers")
    av.add_argument("--resolution", choices=("low", "full"), default="low")
    av.add_argument("--texture-size", type=int, default=2048)
    av.add_argument("--face-index", type=int, default=0,
                    help="which face when several: faces are numbered from 0, clearly seen (roughly "
                         "frontal) faces first, largest first within each group; an index not found exits "
                         "with code 9")
    av.add_argument("--landmarks", choices=("mediapipe", "dlib"), default=None,
                    help="where the 68 landmarks come from: mediapipe (MediaPipe's 468-point mesh mapped to "
                         "68 points; Apache-2.0 models, commercially usable) or dlib (dlib's 68-point model, "
                         "trained on iBUG 300-W: non-commercial use only); default: %s" % _default_landmarks())
    av.add_argument("--seed", type=int, default=0)
    av.add_argument("--shape-source", default="auto",
                    choices=("auto", "template", "fit", "regressor", "guarded", "calibrated"),
                    help="head shape before the non-rigid fit: auto (the fidelity benchmark's choice, docs page "
                         "'Fidelity'), template (mean head), fit (identity fitted to the landmarks), regressor, "
                         "guarded (regressor pulled toward the template for unfamiliar faces), calibrated "
                         "(identity fitted around the template plus the regressor's trusted share, both "
                         "calibrated on real photos)")
    av.add_argument("--template", default=None, choices=("ict", "pipeline", "people"),
                    help="template head of --shape-source template/calibrated: ict (ICT-FaceKit's mean), "
                         "pipeline (corrected toward real people as our detector sees them), people (the same "
                         "without the detector's own offsets); default: the shipped shape prior's choice")
    av.add_argument("--same-camera", action="store_true",
                    help="several photos: they come from one camera (shared intrinsics; default: photos "
                         "with the same EXIF camera model and focal length share them)")
    av.add_argument("--force", action="store_true",
                    help="several photos: reconstruct them as one person even when they look like different people")
    av.add_argument("--overwrite", action="store_true",
                    help="replace an existing output folder (the new one is written completely first, "
                         "then swapped in by renames)")
    av.set_defaults(func=_cmd_avatar)
    for name, target, helptext in (
        ("synth", "digitaltwin_jax.synth.cli", "render a synthetic training set"),
        ("augment", "digitaltwin_jax.geometry.augment_cli", "sample an augmented shape population"),
        ("regressor", "digitaltwin_jax.regressor.cli", "train / evaluate the shape regressor"),
        ("build-model", "digitaltwin_jax.model.build_ict", "convert ICT-FaceKit into the head asset"),
    ):
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.set_defaults(func=None, target=target)
    return ap


def main(argv=None) -> int:
    """Run the ``digitaltwin`` command on ``argv`` and return its exit code (see the docs page "Pipeline and command")."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    if argv and argv[0] in {"synth", "augment", "regressor", "build-model"}:
        import importlib

        target = dict(synth="digitaltwin_jax.synth.cli", augment="digitaltwin_jax.geometry.augment_cli",
                      regressor="digitaltwin_jax.regressor.cli", **{"build-model": "digitaltwin_jax.model.build_ict"})[argv[0]]
        return int(importlib.import_module(target).main(argv[1:]) or 0)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code not in (0, None) else EXIT_OK
    if args.command == "avatar" and args.texture_size < 16:
        print("error: --texture-size must be at least 16", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "avatar" and (args.ray is not None or args.workers is not None) and args.batch is None:
        print("error: --ray and --workers go with --batch", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "avatar" and args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    return args.func(args)


def _leaves_nothing_running(argv) -> bool:
    """Whether ``argv`` is an avatar command of one person's photos (no ``--batch`` workers, no Ray)."""
    if not argv or argv[0] != "avatar":
        return False
    import contextlib
    import io

    try:  # quietly: main() has already reported a command line argparse rejects
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args, _ = build_parser().parse_known_args(argv)
    except SystemExit:
        return False
    return args.batch is None and args.ray is None and args.workers is None


def run(argv=None) -> None:
    """The ``digitaltwin`` program: :func:`main`, then exit with its code.

    After an avatar command of one person's photos the process ends with ``os._exit`` once stdout and
    stderr are flushed: its outputs are complete (written atomically) and it started no worker, while
    the normal interpreter teardown (freeing dlib's models, XLA's client) takes 0.25-0.34 s of the
    command's wall time on 2 cores and does nothing a user needs.  Every other command exits normally.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    code = main(argv)
    if _leaves_nothing_running(argv):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code or 0))
    sys.exit(code)


if __name__ == "__main__":
    run()
