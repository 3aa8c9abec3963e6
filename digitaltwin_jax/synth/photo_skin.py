"""Photo-derived skin for the synthetic renders (issue 14, item 1: "a bank of photo-derived albedos
from licence-clean photos, de-lit"; paper section 3.2 renders every scan with its own albedo).

Each photo goes through the avatar pipeline's own stages, no new maths:

1. front end (:mod:`digitaltwin_jax.frontend`): the largest face, its 68 landmarks and identity
   embedding;
2. Gauss-Newton fit with identity coefficients (:func:`digitaltwin_jax.fitting.fit`,
   ``FitConfig(fit_identity=True)``): the head in the camera frame and the intrinsics;
3. texture stage (:func:`digitaltwin_jax.texture.pipeline.build_texture`) with de-lighting
   (:mod:`digitaltwin_jax.texture.delight`: the photo's low-frequency shading, spherical harmonics of
   the fitted normals, divided out), projected from the face oval minus hair
   (:func:`digitaltwin_jax.texture.face_region.projection_mask`); what the photo does not show
   (scalp, ears, neck) comes from the fill bank's entry closest in skin tone, colour-transferred to
   the face (the pipeline's rule);
4. a photo entry of a :class:`~digitaltwin_jax.texture.bank.TextureBank`: the ``(size, size, 3)
   uint8`` map, the photo's embedding and the median skin colour.

The bank file (:func:`~digitaltwin_jax.texture.bank.save_bank`) is what
``DatasetConfig(albedo_source="texture-bank", texture_bank_path=...)`` renders with (set
``bank_size`` to the number of entries so every entry is drawn).  Beside it,
``<bank>.provenance.json`` records the licence statement given by the caller, every photo's name
and SHA-256, the entry it became or why it was skipped (no face, failed fit: skipped photos are
listed, never dropped silently), the settings and the code commit.

    python -m digitaltwin_jax.synth.photo_skin PHOTO_DIR --out BANK.npz --licence "public domain (...)" \\
        [--names LIST.txt] [--size 512]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["PhotoSkinConfig", "photo_entry", "build_photo_skin_bank", "write_photo_skin_bank",
           "provenance_path", "main"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class PhotoSkinConfig:
    """Settings of :func:`build_photo_skin_bank`.

    Attributes:
      size: side of each stored map (texels; the synthetic sets use 512).
      resolution: head model resolution of the fit and the UV layout (``"low"``: the synth engine's).
      delight: divide the photo's fitted shading out (:class:`~digitaltwin_jax.texture.delight.DelightConfig`
        defaults); False keeps the photo's shading in the map.
      min_eye_distance: smallest outer-eye-corner distance (px) of a usable face (the avatar
        command asks for 32; small official portraits have 25-30, and a skin map tolerates less
        detail than an avatar).
      fill_bank_size, fill_bank_seed: the procedural bank
        (:func:`~digitaltwin_jax.texture.bank.default_texture_bank`) that fills what the photo does
        not show.
    """

    size: int = 512
    resolution: str = "low"
    delight: bool = True
    min_eye_distance: float = 16.0
    fill_bank_size: int = 24
    fill_bank_seed: int = 0

    def __post_init__(self):
        if int(self.size) < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if int(self.fill_bank_size) < 1:
            raise ValueError(f"fill_bank_size must be >= 1, got {self.fill_bank_size}")


def provenance_path(bank_path) -> Path:
    """``<bank>.provenance.json`` beside ``bank_path``."""
    p = Path(bank_path)
    return p.with_name(p.stem + ".provenance.json")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def photo_entry(image, name: str, model, fill_bank, config: PhotoSkinConfig = PhotoSkinConfig()):
    """One photo -> ``(BankEntry, info dict)`` (module docstring, steps 1-4).

    Args:
      image: ``(H, W, 3) uint8`` RGB photo.
      name: entry name.
      model: the head model (``config.resolution``).
      fill_bank: :class:`~digitaltwin_jax.texture.bank.TextureBank` for the unseen areas.

    Raises:
      digitaltwin_jax.frontend.FrontendError: no (large enough) face; ValueError / FitError: the fit failed.
    """
    from digitaltwin_jax.fitting import FitConfig, fit
    from digitaltwin_jax.frontend import detect_faces, identity_embedding
    from digitaltwin_jax.texture.bank import BankEntry
    from digitaltwin_jax.texture.delight import DelightConfig
    from digitaltwin_jax.texture.face_region import projection_mask
    from digitaltwin_jax.texture.pipeline import TextureConfig, build_texture

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    face = detect_faces(image, min_eye_distance=float(config.min_eye_distance))[0]
    emb = np.asarray(identity_embedding(image, face), np.float32).ravel()
    res = fit(model, face.landmarks, image.shape[:2], shape=None, config=FitConfig(fit_identity=True))
    vc = np.asarray(res.vertices_camera)
    if not np.all(np.isfinite(vc)) or not bool(np.all(res.success)):
        raise ValueError("the Gauss-Newton fit did not produce a finite solution")
    cfg = TextureConfig(size=int(config.size), delight=DelightConfig() if config.delight else None)
    tex = build_texture(image, vc, np.asarray(res.intrinsics), model, bank=fill_bank, embedding=None, config=cfg,
                        image_mask=projection_mask(image, face.landmarks))
    tex8 = (np.clip(tex.diffuse, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    seen = tex.confidence > 0.5
    base = np.median(tex.diffuse[seen], axis=0).astype(np.float32) if seen.sum() > 100 else None
    err = np.asarray(res.reprojection_errors, np.float64)
    info = {"landmark_rmse_px": float(np.sqrt(np.nanmean(err ** 2))), "face_box": [float(x) for x in face.box],
            "texels_from_photo": float(tex.blend_mask.mean()), "fill_entry": int(tex.bank_index),
            "fill_rule": tex.bank_rule}
    return BankEntry(name=name, embedding=emb, texture=tex8, base_color=base), info


def _photo_list(photos) -> list[Path]:
    if isinstance(photos, (str, Path)):
        folder = Path(photos)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of photos")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if not paths:
            raise ValueError(f"{folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
        return paths
    paths = [Path(p) for p in photos]
    if not paths:
        raise ValueError("no photos given")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"photo(s) not found: {', '.join(missing[:5])}")
    return paths


def build_photo_skin_bank(photos, *, licence: str, config: PhotoSkinConfig = PhotoSkinConfig(),
                          progress: bool = True, source: str | None = None):
    """A bank of photo entries from ``photos`` (a folder, or a list of files) and its provenance.

    Returns:
      ``(TextureBank, provenance dict)``; ``source`` describes where a list of files came from.

    Raises:
      ValueError: no photos, an empty licence statement, or no photo gave an entry.
    """
    from digitaltwin_jax.io.images import read_image
    from digitaltwin_jax.model.head_model import load_head_model
    from digitaltwin_jax.texture.bank import TextureBank, default_texture_bank

    if not str(licence).strip():
        raise ValueError("a licence statement for the photos is required (it is recorded with the bank)")
    paths = _photo_list(photos)
    model = load_head_model(config.resolution)
    fill = default_texture_bank(int(config.fill_bank_size), int(config.fill_bank_seed))
    entries, records = [], []
    t0 = time.perf_counter()
    it = paths
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(paths, unit="photo", desc="photo skin")
    for p in it:
        rec = {"name": p.name, "sha256": _sha256(p)}
        try:
            img = read_image(p)
            rec["image_size"] = [int(s) for s in img.shape[:2]]
            entry, info = photo_entry(img, f"photo-{p.stem}", model, fill, config)
        except Exception as exc:  # noqa: BLE001 - every skipped photo is recorded with its reason
            rec["skipped"] = f"{type(exc).__name__}: {exc}"
        else:
            rec.update(info, entry=len(entries))
            entries.append(entry)
        records.append(rec)
    if not entries:
        raise ValueError(f"none of the {len(paths)} photos gave a bank entry "
                         f"(first reason: {records[0].get('skipped')})")
    from digitaltwin_jax.regressor.recipe import code_commit

    prov = {
        "kind": "photo-derived skin bank (digitaltwin_jax.synth.photo_skin)",
        "licence": str(licence),
        "source": str(Path(photos).resolve()) if isinstance(photos, (str, Path)) else (source or "list of files"),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "steps": ["frontend.detect_faces (largest) + identity_embedding",
                  "fitting.fit(FitConfig(fit_identity=True))",
                  "texture.build_texture(delight=DelightConfig() if config.delight, "
                  "image_mask=texture.face_region.projection_mask)"],
        "entries": len(entries), "skipped": sum("skipped" in r for r in records),
        "seconds": round(time.perf_counter() - t0, 1), "photos": records, "code": code_commit(),
    }
    return TextureBank(tuple(entries)), prov


def write_photo_skin_bank(photos, out, *, licence: str, config: PhotoSkinConfig = PhotoSkinConfig(),
                          progress: bool = True, source: str | None = None) -> dict:
    """Build (:func:`build_photo_skin_bank`) and write ``out`` and its provenance (both atomically);
    returns the provenance."""
    from digitaltwin_jax.io.atomic import atomic_write_text
    from digitaltwin_jax.texture.bank import save_bank

    bank, prov = build_photo_skin_bank(photos, licence=licence, config=config, progress=progress, source=source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_bank(out, bank)
    atomic_write_text(provenance_path(out), json.dumps(prov, indent=1))
    return prov


def main(argv=None) -> int:
    """Command line: ``python -m digitaltwin_jax.synth.photo_skin PHOTOS --out BANK.npz`` (see its module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m digitaltwin_jax.synth.photo_skin",
                                 description="Build a photo-derived skin bank for the synthetic renders.")
    ap.add_argument("photos", help="folder of photos (JPEG/PNG)")
    ap.add_argument("--out", required=True, help="bank file (.npz); provenance beside it")
    ap.add_argument("--licence", required=True, help="licence statement of the photos (recorded)")
    ap.add_argument("--names", default=None, help="text file: only these file names of the folder (one a line)")
    ap.add_argument("--size", type=int, default=PhotoSkinConfig.size)
    ap.add_argument("--no-delight", action="store_true", help="keep the photos' shading in the maps")
    a = ap.parse_args(argv)
    photos, source = a.photos, None
    if a.names:
        wanted = [ln.strip() for ln in Path(a.names).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        photos = [Path(a.photos) / n for n in wanted]
        source = f"{Path(a.photos).resolve()} (the {len(wanted)} files named in {Path(a.names).resolve()})"
    try:
        prov = write_photo_skin_bank(photos, a.out, licence=a.licence, source=source,
                                     config=PhotoSkinConfig(size=a.size, delight=not a.no_delight))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{a.out}: {prov['entries']} entries, {prov['skipped']} photos skipped (see {provenance_path(a.out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
