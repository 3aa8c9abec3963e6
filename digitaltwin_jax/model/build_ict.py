"""Converter: ICT-FaceKit light model (``FaceXModel/``) -> the compact head-model asset we ship.

    python -m digitaltwin_jax.model.build_ict --source PATH/TO/ICT-FaceKit/FaceXModel

What it keeps (the paper's generic head model, section 3.2, without eyes, teeth and tongue):
  * ICT geometries #0 "Face" and #1 "Head and Neck" (vertices [0, 11248), polygons [0, 11144));
    eye sockets, mouth socket, gums, teeth, eyeballs, lacrimal fluid, eye blend/occlusion meshes and
    lashes are dropped.  Quads are split along their shorter diagonal.
  * millimetres (ICT is in centimetres: x 10).
  * the 100 identity modes ``identityNNN.obj - generic_neutral_mesh.obj`` (N(0, 1) weights, as ICT's
    ``randomize_identity``), and every expression OBJ whose delta moves the kept surface by more than
    0.1 mm (PupilDilate_L/R move only the eyeballs, plus <= 0.05 mm noise on the head, and are dropped; cheekRaiser_L/R, which
    ICT's README does not count among its 53, are kept).
  * one square UV atlas: ICT's two UDIM tiles (face; head and neck) packed into [0, 1]^2 by
    :func:`~digitaltwin_jax.model.atlas.pack_udim_atlas` (similarity per chart, no distortion).
  * the 68 Multi-PIE landmarks and extended jawlines listed in ICT's README, the nose tip (the
    most protruding point along +z of the mean head), the 7 evaluation landmarks, and masks.

The low resolution (<= 3,000 vertices) is built by :mod:`digitaltwin_jax.model.resample`; only its
topology, UVs and the sparse barycentric map from the full mesh are stored, and
:func:`~digitaltwin_jax.model.head_model.load_head_model` derives every basis as ``W @ full``.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np

from digitaltwin_jax.io.atomic import atomic_write_bytes
from digitaltwin_jax.io.obj import read_obj, triangulate_polygons
from digitaltwin_jax.model.atlas import pack_udim_atlas
from digitaltwin_jax.model.head_model import FACE_RADIUS_MM, FACE_WEIGHT
from digitaltwin_jax.model.visibility import visibility_fraction

__all__ = ["IctLayout", "ICT_LAYOUT", "read_ict_head", "head_masks", "build_full_asset", "write_npz", "main"]

CM_TO_MM = 10.0


@dataclasses.dataclass(frozen=True)
class IctLayout:
    """Which leading vertices/polygons of ICT's OBJs form the head surface (ICT README table)."""

    head_vertices: int = 11248  # geometries #0 Face + #1 Head and Neck
    head_polygons: int = 11144
    face_vertices: int = 9409  # geometry #0 Face (the nose tip is searched there)


ICT_LAYOUT = IctLayout()

# ICT-FaceKit README, "Multi-PIE 68 point facial landmarks indices" (0-based, iBUG order).
ICT_LANDMARKS_68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695,
    2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517,
    5966,
)
# ICT README "Right/Left extended jawline" (supersets of the jawlines substituting points 0-7 / 9-16),
# both in iBUG order: right from the ear to the chin (like points 0-7), left from the chin to the ear
# (like points 9-16).
ICT_CONTOUR_RIGHT = (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800)
ICT_CONTOUR_LEFT = (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493, 3496, 3498)
# 3DFAW / paper section 4.3 alignment landmarks as iBUG indices: right eye outer/inner corners,
# left eye inner/outer corners, nose bottom (subnasale), right and left mouth corners.
EVAL_LANDMARKS_IBUG = (36, 39, 42, 45, 33, 48, 54)


def _expression_files(source: Path) -> list[Path]:
    skip = {"generic_neutral_mesh.obj"}
    return sorted(p for p in source.glob("*.obj") if p.name not in skip and not p.name.startswith("identity"))


def _head_positions(path: Path, n_expected: int, n_head: int) -> np.ndarray:
    mesh = read_obj(path)
    if len(mesh.vertices) != n_expected:
        raise ValueError(f"{path}: {len(mesh.vertices)} vertices, expected {n_expected} (same topology as the neutral mesh)")
    return mesh.vertices[:n_head] * CM_TO_MM


def read_ict_head(source, *, layout: IctLayout = ICT_LAYOUT, min_motion_mm: float = 0.1,
                  progress: bool = True) -> dict:
    """Read ICT-FaceKit's ``FaceXModel`` folder and return the head-surface arrays in mm.

    Returns a dict with ``vertices (V,3) float64``, ``faces (F,3) int32``, ``uvs (T,2)``,
    ``uv_faces (F,3)``, ``identity_basis (K,V,3)``, ``expression_basis (M,V,3)``,
    ``expression_names (M,)``, ``dropped_expressions``.
    """
    source = Path(source)
    neutral_path = source / "generic_neutral_mesh.obj"
    if not neutral_path.exists():
        raise FileNotFoundError(f"{neutral_path} not found: --source must be ICT-FaceKit's FaceXModel folder")
    mesh = read_obj(neutral_path)
    nv, npoly = layout.head_vertices, layout.head_polygons
    if len(mesh.vertices) < nv or len(mesh.polygons) < npoly:
        raise ValueError(f"{neutral_path}: too few vertices/polygons for the ICT light model")
    if mesh.uv_polygons is None:
        raise ValueError(f"{neutral_path}: no texture coordinates")
    polys = mesh.polygons[:npoly]
    uv_polys = mesh.uv_polygons[:npoly]
    if max(int(p.max()) for p in polys) >= nv:
        raise ValueError("head polygons reference vertices outside the head range")
    verts = mesh.vertices[:nv] * CM_TO_MM
    faces, uv_faces = triangulate_polygons(verts, polys, uv_polys)
    used_uv = np.unique(uv_faces)
    remap = np.full(len(mesh.uvs), -1, dtype=np.int64)
    remap[used_uv] = np.arange(len(used_uv))
    uvs = mesh.uvs[used_uv]
    uv_faces = remap[uv_faces].astype(np.int32)

    n_all = len(mesh.vertices)
    id_files = sorted(source.glob("identity[0-9][0-9][0-9].obj"))
    if not id_files:
        raise FileNotFoundError(f"no identityNNN.obj files in {source}")
    files = [("identity", p) for p in id_files] + [("expression", p) for p in _expression_files(source)]
    try:
        from tqdm import tqdm

        it = tqdm(files, desc="reading ICT OBJs", disable=not progress)
    except ImportError:  # pragma: no cover
        it = files
    ids, exprs, names, dropped = [], [], [], []
    for kind, p in it:
        delta = _head_positions(p, n_all, nv) - verts
        if kind == "identity":
            ids.append(delta)
        elif np.abs(delta).max() > min_motion_mm:
            exprs.append(delta)
            names.append(p.stem)
        else:
            dropped.append(p.stem)
    return {
        "vertices": verts,
        "faces": faces,
        "uvs": uvs,
        "uv_faces": uv_faces,
        "identity_basis": np.stack(ids),
        "expression_basis": np.stack(exprs) if exprs else np.zeros((0,) + verts.shape),
        "expression_names": np.asarray(names),
        "dropped_expressions": dropped,
    }


def _point_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, ``pts (N,2)``, ``poly (P,2)`` -> ``(N,) bool``."""
    inside = np.zeros(len(pts), dtype=bool)
    x, y = pts[:, 0], pts[:, 1]
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        xi = x1 + (y - y1) * (x2 - x1) / np.where(y2 != y1, y2 - y1, 1.0)
        inside ^= crosses & (x < xi)
    return inside


def head_masks(vertices: np.ndarray, faces: np.ndarray, landmark_indices, *, visibility=None,
               min_visibility: float = 0.04, face_vertices: int = ICT_LAYOUT.face_vertices) -> dict:
    """Nose tip, face weights/mask, eye mask and outer-surface mask of a head in the ICT frame (mm).

    * nose tip: the face-region vertex with the largest z (most protruding point of the mean head).
    * face mask: Euclidean distance to the nose tip <= 95 mm; weights 5 there, 1 elsewhere.
    * eye mask: vertices whose (x, y) lies inside the eye-landmark polygon (iBUG 36-41 / 42-47)
      scaled by 1.25 about its centroid, with z within 20 mm of the polygon's mean z (so the same
      (x, y) on the back of the head is not caught).
    * outer surface: :func:`visibility_fraction` >= ``min_visibility``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    nose = int(np.argmax(np.where(np.arange(len(v)) < face_vertices, v[:, 2], -np.inf)))
    dist = np.linalg.norm(v - v[nose], axis=1)
    face_mask = dist <= FACE_RADIUS_MM
    lm = v[np.asarray(landmark_indices)]
    eye = np.zeros(len(v), dtype=bool)
    for sl in (slice(36, 42), slice(42, 48)):
        poly = lm[sl, :2]
        c = poly.mean(axis=0)
        poly = c + 1.25 * (poly - c)
        near = np.abs(v[:, 2] - lm[sl, 2].mean()) < 20.0
        eye |= near & _point_in_polygon(v[:, :2], poly)
    if visibility is None:
        visibility = visibility_fraction(v, faces)
    return {
        "nose_tip_index": np.int64(nose),
        "face_mask": face_mask,
        "face_weights": np.where(face_mask, FACE_WEIGHT, 1.0).astype(np.float32),
        "eye_mask": eye,
        "visibility": visibility.astype(np.float32),
        "outer_surface_mask": visibility >= min_visibility,
    }


def build_full_asset(source, *, progress: bool = True) -> dict:
    """All arrays of ``ict_head_full.npz`` (float32/int32/bool), from ICT's ``FaceXModel`` folder."""
    head = read_ict_head(source, progress=progress)
    lm = np.asarray(ICT_LANDMARKS_68, dtype=np.int32)
    masks = head_masks(head["vertices"], head["faces"], lm)
    return {
        "vertices": head["vertices"].astype(np.float32),
        "faces": head["faces"].astype(np.int32),
        "uvs": pack_udim_atlas(head["uvs"], head["uv_faces"]).astype(np.float32),
        "uv_faces": head["uv_faces"].astype(np.int32),
        "identity_basis": head["identity_basis"].astype(np.float32),
        "expression_basis": head["expression_basis"].astype(np.float32),
        "expression_names": head["expression_names"],
        "landmark_indices": lm,
        "eval_landmark_indices": lm[list(EVAL_LANDMARKS_IBUG)],
        "contour_right": np.asarray(ICT_CONTOUR_RIGHT, dtype=np.int32),
        "contour_left": np.asarray(ICT_CONTOUR_LEFT, dtype=np.int32),
        "nose_tip_index": masks["nose_tip_index"],
        "face_weights": masks["face_weights"],
        "face_mask": masks["face_mask"],
        "eye_mask": masks["eye_mask"],
        "outer_surface_mask": masks["outer_surface_mask"],
        "visibility": masks["visibility"],
        "dropped_expressions": np.asarray(head["dropped_expressions"]),
    }


def write_npz(path, arrays: dict) -> None:
    """Write a compressed ``.npz`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    """Command line: convert an ICT-FaceKit folder into the package's head-model asset."""
    ap = argparse.ArgumentParser(description="Convert ICT-FaceKit's FaceXModel into digitaltwin_jax's head asset.")
    ap.add_argument("--source", required=True, help="path of ICT-FaceKit/FaceXModel")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets"),
                    help="output folder (default: the package's assets folder)")
    ap.add_argument("--low-vertices", type=int, default=2900, help="target vertex count of the low mesh")
    ap.add_argument("--skip-low", action="store_true", help="only write the full-resolution asset")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    full = build_full_asset(args.source)
    write_npz(out / "ict_head_full.npz", full)
    summary = {
        "full_vertices": int(len(full["vertices"])),
        "full_faces": int(len(full["faces"])),
        "expressions": [str(s) for s in full["expression_names"]],
        "dropped_expressions": [str(s) for s in full["dropped_expressions"]],
        "outer_surface_vertices": int(full["outer_surface_mask"].sum()),
        "eye_mask_vertices": int(full["eye_mask"].sum()),
        "nose_tip_index": int(full["nose_tip_index"]),
    }
    if not args.skip_low:
        from digitaltwin_jax.model.low_asset import build_low_asset

        low, stats = build_low_asset(full, target_vertices=args.low_vertices)
        write_npz(out / "ict_head_low.npz", low)
        summary["low"] = stats
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
