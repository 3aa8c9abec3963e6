"""Several photos of one person -> one avatar (one head, each photo its own pose and expression).

``reconstruct`` takes a list of photos: the front end runs on each, the shape stage once on the mean
identity embedding, then one Gauss-Newton fit of all photos at once (``multiview.fit_views``: one
shared head and corrective field, a pose and expression per photo, a focal scale per camera) and a
texture fused from every photo (``texture.fuse``).  Photos whose embeddings say they show different
people are refused (``DifferentPeopleError``) unless ``AvatarConfig(force=True)``.

Usage::

    python examples/several_photos.py a.jpg b.jpg c.jpg [--texture-size 1024] [--out out/several]

Without photos it uses the example photo and a second view made from it (mirrored, cropped and
shrunk: the same person, another "camera").
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent


def second_view(photo: np.ndarray) -> np.ndarray:
    """The photo mirrored, cropped by 10% on each side and shrunk to 80%: another view of one person."""
    import cv2

    h, w = photo.shape[:2]
    crop = photo[h // 10: h - h // 10, w // 10: w - w // 10, :][:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", help="photos of one person (default: the example photo + a derived view)")
    ap.add_argument("--texture-size", type=int, default=1024)
    ap.add_argument("--out", default="out/several", help="output folder (replaced if it exists)")
    args = ap.parse_args(argv)

    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.pipeline import AvatarConfig, reconstruct, write_avatar

    if args.photos:
        photos = [read_image(p) for p in args.photos]
    else:
        first = read_image(EXAMPLES / "astronaut.png")
        photos = [first, second_view(first)]

    # same_camera=None: photos with the same EXIF camera and focal length share intrinsics.
    avatar = reconstruct(photos, config=AvatarConfig(texture_size=args.texture_size))
    per_photo = avatar.info["photos"]
    for k, p in enumerate(per_photo):
        errors = np.asarray(p["landmark_errors_px"], dtype=float)
        print(f"photo {k}: reprojection RMSE {np.sqrt(np.nanmean(errors ** 2)):.2f} px, "
              f"camera group {p['camera']['camera_group']}, focal scale {p['camera']['focal_scale']:.2f}")
    print(f"one head: {avatar.neutral_vertices.shape[0]} vertices; preview and top-level pose are photo 0's")
    out = write_avatar(avatar, args.out, photo=photos[0], overwrite=True)
    print("wrote", out)
    return {"avatar": avatar, "photos": photos, "out": Path(out)}


if __name__ == "__main__":
    main()
