"""The avatar from Python: one photo -> an ``Avatar`` (arrays) -> files, and swapping one stage.

``reconstruct`` runs the stages of the paper's Fig. 2 (front end, shape source, non-rigid fit,
texture) and returns an :class:`~digitaltwin_jax.pipeline.Avatar` holding numpy arrays; nothing is
written until ``write_avatar``.  Every stage is a plain callable in ``pipeline.Stages``; here the
shape stage is swapped for a head of our own (the model's mean head, 5% wider) before the fit.

Usage::

    python examples/avatar_from_python.py [--photo examples/astronaut.png] [--texture-size 1024] [--out out/tutorial]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default=str(EXAMPLES / "astronaut.png"))
    ap.add_argument("--texture-size", type=int, default=1024, help="side of the diffuse map (2048 in the command)")
    ap.add_argument("--out", default="out/tutorial", help="output folder (replaced if it exists)")
    args = ap.parse_args(argv)

    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.pipeline import AvatarConfig, default_stages, reconstruct, write_avatar

    # The photo as displayed: (H, W, 3) uint8 RGB, EXIF orientation applied, alpha composited on white.
    photo = read_image(args.photo)
    config = AvatarConfig(texture_size=args.texture_size)

    # One call runs every stage; the result is arrays only.
    avatar = reconstruct(photo, config=config)
    print(f"vertices {avatar.vertices.shape} (mm, head frame), faces {avatar.faces.shape}, "
          f"texture {avatar.texture.shape}")
    print(f"landmark reprojection RMSE {avatar.landmark_rmse_px:.2f} px; focal {avatar.K[0, 0]:.0f} px")
    top = np.argsort(avatar.expression_weights)[::-1][:3]
    print("strongest blendshapes:", ", ".join(f"{avatar.expression_names[i]} {avatar.expression_weights[i]:.2f}"
                                               for i in top))
    print("stages (s):", {k: round(v, 2) for k, v in avatar.timings.items()})

    # The same files the command writes: head.obj/.mtl, diffuse.png, head.glb, preview.png, report.json.
    out = Path(args.out)
    write_avatar(avatar, out, photo=photo, photo_path=args.photo, overwrite=True)
    print("wrote", ", ".join(sorted(p.name for p in out.iterdir())))

    # Swap one stage: the shape stage gets (photo, face, embedding, model) and returns a (V, 3) head in mm;
    # the non-rigid fit then adds pose, focal, expression and the corrective field to it.
    def wide_template(image, face, embedding, model):
        v = np.asarray(model.vertices, np.float32)
        return v * np.array([1.05, 1.0, 1.0], np.float32)      # 5% wider (x is left-right)

    stages = dataclasses.replace(default_stages(config), shape=wide_template)
    wide = reconstruct(photo, config=config, stages=stages)
    width = np.ptp(wide.neutral_vertices[:, 0]) / np.ptp(avatar.neutral_vertices[:, 0])
    print(f"own shape stage: head width x{width:.3f} of the default's, "
          f"reprojection RMSE {wide.landmark_rmse_px:.2f} px")
    return {"avatar": avatar, "wide_avatar": wide, "out": out, "photo": photo}


if __name__ == "__main__":
    main()
