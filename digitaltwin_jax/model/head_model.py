"""The head model: the paper's "generic head model" plus expression blendshapes (section 3.4).

P_F = P + sum_i beta_i B_i (+ deltaP)  -- the shape part of the paper's problem formulation; here
P = mean + sum_k alpha_k I_k is the ICT-FaceKit identity space (our open replacement for the paper's
scan database) and B_i are ICT's ARKit-named expression blendshapes.

Conventions (used everywhere in the package):
  * millimetres; head frame is ICT's: x to the subject's left, y up, z out of the face (+z toward a
    frontal camera);
  * ``vertices (V, 3) float32``, ``faces (F, 3) int32`` counter-clockwise seen from outside;
  * UVs have their own index array (``uv_faces (F, 3)``) because UV seams split vertices.

``HeadModel`` is an immutable dataclass registered as a JAX pytree: array fields are leaves,
names/ragged index lists are static metadata, so a model can be passed through ``jit``/``vmap``.
"""
from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["HeadModel", "load_head_model", "head_shape", "RESOLUTIONS"]

RESOLUTIONS = ("low", "full")
# ``face_weights`` of the assets (built by model/build_ict.py and model/resample.py):
FACE_RADIUS_MM = 95.0  # paper section 3.3: L1 weight 5 within 95 mm of the nose tip
FACE_WEIGHT = 5.0

_ARRAY_FIELDS = (
    "vertices",
    "faces",
    "uvs",
    "uv_faces",
    "identity_basis",
    "expression_basis",
    "landmark_indices",
    "eval_landmark_indices",
    "face_weights",
    "face_mask",
    "eye_mask",
    "outer_surface_mask",
)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=list(_ARRAY_FIELDS),
    meta_fields=["expression_names", "contour_candidates", "nose_tip_index", "resolution"],
)
@dataclasses.dataclass(frozen=True)
class HeadModel:
    """A linear head model with identity modes and expression blendshapes.

    Attributes:
      vertices: ``(V, 3) float32`` mean (generic neutral) head, mm.
      faces: ``(F, 3) int32`` triangles into ``vertices``.
      uvs: ``(T, 2) float32`` texture coordinates in [0, 1], origin bottom-left (OBJ convention).
      uv_faces: ``(F, 3) int32`` triangles into ``uvs`` (corner k of face f has uv ``uvs[uv_faces[f, k]]``).
      identity_basis: ``(K, V, 3) float32`` identity modes (K = 100), scaled so that identity
        coefficients are N(0, 1) (ICT's ``randomize_identity``).
      expression_basis: ``(M, V, 3) float32`` blendshape deltas for weights in [0, 1].
      landmark_indices: ``(68,) int32`` Multi-PIE/iBUG 68 landmark vertices.
      eval_landmark_indices: ``(7,) int32`` 3DFAW alignment landmarks: right eye outer, right eye inner,
        left eye inner, left eye outer, nose bottom (subnasale), right mouth corner, left mouth corner.
      face_weights: ``(V,) float32`` 5 within 95 mm of the nose tip, 1 elsewhere (paper, section 3.3).
      face_mask: ``(V,) bool`` vertices within 95 mm of the nose tip.
      eye_mask: ``(V,) bool`` vertices of the eye regions (eyelids/eye openings).
      outer_surface_mask: ``(V,) bool`` vertices visible from outside the head (not nostril tunnels,
        inner lips, eyelid rims, ear crevices).
      expression_names: ``M`` ARKit-style names (``_L``/``_R`` suffixes as ICT).
      contour_candidates: ``(right, left)`` vertex-index tuples of ICT's extended jawlines used for
        sliding the 17 contour landmarks, both in iBUG order: right runs ear -> chin (the side of
        points 0-7), left runs chin -> ear (points 9-16).
      nose_tip_index: vertex index of the nose tip.
      resolution: ``"low"`` or ``"full"``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    landmark_indices: np.ndarray
    eval_landmark_indices: np.ndarray
    face_weights: np.ndarray
    face_mask: np.ndarray
    eye_mask: np.ndarray
    outer_surface_mask: np.ndarray
    expression_names: tuple[str, ...]
    contour_candidates: tuple[tuple[int, ...], tuple[int, ...]]
    nose_tip_index: int
    resolution: str

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def expression_index(self, name: str) -> int:
        """Index of the blendshape called ``name`` (ValueError naming the known names if absent)."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise ValueError(
                f"unknown expression {name!r}; known: {', '.join(self.expression_names)}"
            ) from None


def head_shape(model: HeadModel, identity_coeffs=None, expression_coeffs=None) -> jax.Array:
    """Vertices of the head for given coefficients (pure; jit/vmap/grad friendly).

    Args:
      model: the head model.
      identity_coeffs: ``(K',) float`` with K' <= K (leading modes), or None for the mean head.
      expression_coeffs: ``(M,) float`` blendshape weights, or None for neutral.

    Returns:
      ``(V, 3)`` vertices in mm, ``mean + sum_k a_k I_k + sum_i b_i B_i``.

    Raises:
      ValueError: wrong shapes, or (for concrete, untraced inputs) NaN / infinite coefficients.
      TypeError: non-numeric coefficients.
    """
    v = jnp.asarray(model.vertices)
    if identity_coeffs is not None:
        a = jnp.asarray(_checked_coeffs(identity_coeffs, "identity_coeffs"))
        if a.ndim != 1 or a.shape[0] > model.identity_basis.shape[0]:
            raise ValueError(
                f"identity_coeffs must have shape (K,) with K <= {model.identity_basis.shape[0]}, got {a.shape}"
            )
        basis = jnp.asarray(model.identity_basis[: a.shape[0]])
        v = v + jnp.tensordot(a.astype(basis.dtype), basis, axes=1)
    if expression_coeffs is not None:
        b = jnp.asarray(_checked_coeffs(expression_coeffs, "expression_coeffs"))
        if b.shape != (model.expression_basis.shape[0],):
            raise ValueError(
                f"expression_coeffs must have shape ({model.expression_basis.shape[0]},), got {b.shape}"
            )
        basis = jnp.asarray(model.expression_basis)
        v = v + jnp.tensordot(b.astype(basis.dtype), basis, axes=1)
    return v


def _checked_coeffs(x, name: str):
    """Dtype and finiteness check of concrete coefficients; traced values pass through (jit/vmap/grad)."""
    if isinstance(x, jax.core.Tracer):
        return x
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinity")
    return a


def asset_path(name: str) -> Path:
    """Path of a file shipped in ``digitaltwin_jax/assets``."""
    return Path(str(resources.files("digitaltwin_jax") / "assets" / name))


def _load_npz(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(
            f"head model asset {path} is missing; rebuild it with "
            "`python -m digitaltwin_jax.model.build_ict --source ICT-FaceKit/FaceXModel`"
        )
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@functools.lru_cache(maxsize=4)
def load_head_model(resolution: str = "low") -> HeadModel:
    """Load the shipped head model (derived from ICT-FaceKit, MIT licence; see assets/ICT-LICENSE.txt).

    Args:
      resolution: ``"low"`` (<= 3,000 vertices, a fixed barycentric resampling of the full mesh, so
        every identity mode and blendshape transfers exactly) or ``"full"`` (the ICT face + head-and-neck
        surface, 11,248 vertices).

    Returns:
      An immutable :class:`HeadModel` with numpy arrays (float32 / int32 / bool).
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    full = _load_npz(asset_path("ict_head_full.npz"))
    if resolution == "full":
        return _model_from_arrays(full, "full")
    low = _load_npz(asset_path("ict_head_low.npz"))
    W = resampling_matrix()
    arrays = dict(low)
    arrays["vertices"] = (W @ full["vertices"].astype(np.float64)).astype(np.float32)
    for key in ("identity_basis", "expression_basis"):
        b = full[key].astype(np.float64)  # (K, Vf, 3)
        k, vf, _ = b.shape
        flat = b.transpose(1, 0, 2).reshape(vf, k * 3)
        arrays[key] = (W @ flat).reshape(W.shape[0], k, 3).transpose(1, 0, 2).astype(np.float32)
    for key in ("expression_names", "contour_right", "contour_left", "nose_tip_index"):
        arrays.setdefault(key, full[key])
    return _model_from_arrays(arrays, "low")


@functools.lru_cache(maxsize=1)
def resampling_matrix():
    """The fixed sparse ``(V_low, V_full)`` matrix W with ``low_vertices = W @ full_vertices``.

    Each row holds the barycentric weights (non-negative, summing to 1) of a low vertex inside a
    triangle of the full mesh.  Returned as ``scipy.sparse.csr_matrix`` float64.
    """
    import scipy.sparse as sp

    with np.load(asset_path("ict_head_low.npz"), allow_pickle=False) as low:  # only the arrays used
        idx = low["source_indices"].astype(np.int64)  # (Vl, 3)
        w = low["source_weights"].astype(np.float64)  # (Vl, 3)
    with np.load(asset_path("ict_head_full.npz"), allow_pickle=False) as full:
        full_n = int(full["vertices"].shape[0])  # reads one 135 KB member, not the 11 MB bases
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return sp.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(idx.shape[0], full_n))


def _model_from_arrays(a: dict, resolution: str) -> HeadModel:
    names = tuple(str(s) for s in a["expression_names"])
    return HeadModel(
        vertices=a["vertices"].astype(np.float32),
        faces=a["faces"].astype(np.int32),
        uvs=a["uvs"].astype(np.float32),
        uv_faces=a["uv_faces"].astype(np.int32),
        identity_basis=a["identity_basis"].astype(np.float32),
        expression_basis=a["expression_basis"].astype(np.float32),
        landmark_indices=a["landmark_indices"].astype(np.int32),
        eval_landmark_indices=a["eval_landmark_indices"].astype(np.int32),
        face_weights=a["face_weights"].astype(np.float32),
        face_mask=a["face_mask"].astype(bool),
        eye_mask=a["eye_mask"].astype(bool),
        outer_surface_mask=a["outer_surface_mask"].astype(bool),
        expression_names=names,
        contour_candidates=(
            tuple(int(i) for i in a["contour_right"]),
            tuple(int(i) for i in a["contour_left"]),
        ),
        nose_tip_index=int(a["nose_tip_index"]),
        resolution=resolution,
    )
