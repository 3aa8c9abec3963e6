"""Eye and mouth openings of the head mesh for the synthetic renders (paper section 3.2: "we opt not
to render eye models and mask out the eye areas").

The head asset has no eyeballs, teeth or mouth cavity: its eye and mouth openings are holes (mesh
boundary loops).  For rendering they are closed by *caps*: a fan from each boundary loop to a centre
point pushed into the head (``-z`` in the head frame).  Two eye modes:

* ``"masked"`` (default, the paper's choice): eye caps are tagged ``EYE_MASK``; the engine paints
  their pixels with a constant fill colour after shading and records them in a per-image eye mask, so
  training can mask the region (and test-time photos are masked with their detected eye landmarks);
* ``"eyeballs"``: a sphere of radius ``radius`` mm per eye is placed behind each opening (its centre
  ``radius - protrusion`` mm behind the opening's centroid along ``-z``) and a dark socket cap further
  back hides any gap.  This stands in for ICT's eyeball geometry, which the asset does not include.
  The sphere carries per-vertex unit directions so the engine can paint sclera, iris and pupil around
  the sphere's ``+z`` axis.

The mouth opening gets a dark cavity cap in both modes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from digitaltwin_jax.model.openings import Openings, boundary_loops, find_openings
from digitaltwin_jax.render.primitives import icosphere

__all__ = [
    "SKIN", "EYE_MASK", "MOUTH", "EYEBALL", "SOCKET",
    "Openings", "boundary_loops", "find_openings", "OpeningGeometry", "opening_geometry",
]

# Material ids of the assembled mesh's faces.
SKIN, EYE_MASK, MOUTH, EYEBALL, SOCKET = 0, 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class OpeningGeometry:
    """Extra geometry closing the openings for one head shape.

    Attributes:
      vertices: ``(E, 3) float32`` extra vertices (head frame), to be appended after the head's V.
      faces: ``(G, 3) int32`` extra faces indexing the concatenated ``(V + E)`` vertex array.
      material: ``(G,) int8`` material id per extra face (``EYE_MASK``, ``MOUTH``, ``EYEBALL``,
        ``SOCKET``).
      eye_dirs: ``(E, 3) float32`` unit direction from the eyeball centre for eyeball vertices (zeros
        elsewhere), for iris/pupil painting.
    """

    vertices: np.ndarray
    faces: np.ndarray
    material: np.ndarray
    eye_dirs: np.ndarray


def _cap(v, loop, depth, base, material):
    centre = v[loop].mean(axis=0) - np.array([0.0, 0.0, depth])
    a = loop
    b = np.roll(loop, -1)
    c = np.full_like(a, base)
    return centre[None], np.stack([b, a, c], axis=1), np.full(len(a), material, np.int8)


_SPHERE = icosphere(2, 1.0)


def opening_geometry(vertices, openings: Openings, *, eyes: str = "masked", radius: float = 12.0,
                     protrusion: float = 2.5) -> OpeningGeometry:
    """Caps (and eyeballs) for a head shape ``vertices (V, 3)``; see the module docstring."""
    if eyes not in ("masked", "eyeballs"):
        raise ValueError(f"eyes must be 'masked' or 'eyeballs', got {eyes!r}")
    v = np.asarray(vertices, dtype=np.float64)
    n = v.shape[0]
    verts, faces, mats, dirs = [], [], [], []
    count = n

    def add(vx, fx, mx, dx=None):
        nonlocal count
        verts.append(vx)
        faces.append(fx)
        mats.append(mx)
        dirs.append(np.zeros_like(vx) if dx is None else dx)
        count += len(vx)

    eye_depth = 3.0 if eyes == "masked" else radius + 4.0
    eye_mat = EYE_MASK if eyes == "masked" else SOCKET
    for loop in (openings.eye_right, openings.eye_left):
        add(*_cap(v, loop, eye_depth, count, eye_mat))
    add(*_cap(v, openings.mouth, 8.0, count, MOUTH))
    if eyes == "eyeballs":
        sv, sf = _SPHERE
        for loop in (openings.eye_right, openings.eye_left):
            centre = v[loop].mean(axis=0) - np.array([0.0, 0.0, radius - protrusion])
            add(centre + radius * sv.astype(np.float64), sf.astype(np.int64) + count,
                np.full(len(sf), EYEBALL, np.int8), sv.astype(np.float64))
    return OpeningGeometry(
        np.concatenate(verts).astype(np.float32),
        np.concatenate(faces).astype(np.int32),
        np.concatenate(mats).astype(np.int8),
        np.concatenate(dirs).astype(np.float32),
    )
