"""``python -m digitaltwin_jax synth``: render a synthetic training set (paper section 3.2).

Example::

    python -m digitaltwin_jax synth --count 10000 --out /data/synth_v1 --seed 0

Writes sharded ``.npz`` files (images + ground truth), a contact sheet and a summary into ``--out``;
rerunning the same command resumes after an interruption.  ``--ray [local|ADDRESS]`` renders the
shards on Ray (:mod:`digitaltwin_jax.synth.ray_shards`; the same images).  Exit codes: 0 done,
1 error (message on stderr) or shards that failed (listed in the printed summary), 2 bad arguments.  No maths here: see :mod:`digitaltwin_jax.synth.dataset`.
"""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``digitaltwin synth``."""
    from digitaltwin_jax.synth.dataset import SAMPLERS

    p = argparse.ArgumentParser(
        prog="digitaltwin synth",
        description="Render synthetic face images with ground-truth 3-D heads (paper section 3.2).",
    )
    p.add_argument("--count", type=int, default=10000, help="number of images (default 10000)")
    p.add_argument("--out", required=True, help="output folder (created; reruns resume)")
    p.add_argument("--seed", type=int, default=0, help="data-set seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--supersample", type=int, default=2, help="rasterisation supersampling factor (default 2)")
    p.add_argument("--shading", choices=("sample", "pixel"), default="sample",
                   help="shade every sub-sample (full supersampling, default) or once per output pixel "
                        "(multisample anti-aliasing, ~2x faster)")
    p.add_argument("--shard-size", type=int, default=256, help="images per shard file (default 256)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default 2); with --ray: Ray workers (default one per cluster CPU)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|ADDRESS",
                   help="render the shards on Ray: 'local' (this machine) or a cluster address "
                        "(HOST:6379 of `ray start --head`; needs the 'distributed' extra)")
    p.add_argument("--sampler", choices=SAMPLERS, default="dr",
                   help="shape population: dr (paper), cpca, noaug (ablations), gaussian (model prior)")
    p.add_argument("--population-size", type=int, default=482,
                   help="subjects in the stand-in database of the dr/cpca/noaug samplers (default 482)")
    p.add_argument("--population-groups", type=int, default=6, help="groups of that database (default 6)")
    p.add_argument("--resolution", choices=("low", "full"), default="low", help="head model resolution")
    p.add_argument("--eyes", choices=("masked", "eyeballs"), default="masked",
                   help="masked eye openings (paper, default) or sphere eyeballs")
    p.add_argument("--expressions", action="store_true", help="random expressions (default: neutral)")
    p.add_argument("--albedo", choices=("closest", "random"), default="closest",
                   help="albedo of the closest population subject (paper, default) or a random map")
    p.add_argument("--bank-size", type=int, default=64, help="albedo maps in the bank (default 64)")
    p.add_argument("--albedo-source", choices=("procedural", "texture-bank"), default="procedural",
                   help="albedo maps: this engine's procedural skin model (default) or the texture "
                        "pipeline's bank (procedural entries + photo-derived maps)")
    p.add_argument("--texture-bank", default=None, help="saved texture bank file for --albedo-source texture-bank")
    p.add_argument("--texture-size", type=int, default=512, help="albedo map side (default 512)")
    p.add_argument("--backgrounds", default=None, help="optional folder of background photos")
    p.add_argument("--max-shards", type=int, default=None, help="stop after rendering this many shards")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    """Run ``digitaltwin synth`` on ``argv`` and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        from digitaltwin_jax.synth.dataset import DatasetConfig, generate
        from digitaltwin_jax.synth.engine import RenderConfig
        from digitaltwin_jax.synth.scene import SceneConfig

        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        config = DatasetConfig(
            count=args.count,
            seed=args.seed,
            shard_size=args.shard_size,
            sampler=args.sampler,
            resolution=args.resolution,
            population_size=args.population_size,
            population_groups=args.population_groups,
            bank_size=args.bank_size,
            texture_size=args.texture_size,
            albedo_source=args.albedo_source,
            texture_bank_path=args.texture_bank,
            background_dir=args.backgrounds,
            scene=SceneConfig(image_size=args.size, expressions=args.expressions, albedo_assignment=args.albedo,
                              photo_background_probability=0.5 if args.backgrounds else 0.0),
            render=RenderConfig(supersample=args.supersample, shading=args.shading, eyes=args.eyes),
        )
        if args.ray is not None:
            from digitaltwin_jax.synth.ray_shards import generate_on_ray

            summary = generate_on_ray(args.out, config, address=args.ray, workers=args.workers,
                                      progress=not args.no_progress, max_shards=args.max_shards)
        else:
            summary = generate(args.out, config, workers=args.workers or 2, progress=not args.no_progress,
                               max_shards=args.max_shards)
    except (ValueError, FileNotFoundError, ImportError, OSError, RuntimeError) as e:
        print(f"synth: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 1 if summary.get("failed_shards") else 0


if __name__ == "__main__":
    sys.exit(main())
