"""The fit's pytrees: the solver's unknowns (:class:`FitVariables`), what terms read (:class:`FitData`),
and the results (:class:`FitParams`, :class:`FitResult`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

__all__ = ["FitVariables", "FitData", "TermInputs", "FitParams", "FitResult"]


def _dataclass_pytree(data_fields, meta_fields=()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data_fields), meta_fields=list(meta_fields))

    return wrap


@_dataclass_pytree(["beta", "alpha", "t", "q", "f_s", "offsets"])
class FitVariables:
    """The solver's unknowns (a pytree).

    Attributes:
      beta: ``(M,)`` blendshape weights.  alpha: ``(K,)`` identity coefficients (K = 0 when off).
      t: ``(3,)`` mm.  q: ``(4,)`` wxyz (normalised inside every use).  f_s: ``()`` focal scale.
      offsets: ``(68, 3)`` the corrective field deltaP at the 68 current landmark samples (the rest
        of deltaP is eliminated exactly by the corrective term).
    """

    beta: Any
    alpha: Any
    t: Any
    q: Any
    f_s: Any
    offsets: Any


@_dataclass_pytree(
    [
        "landmarks", "mask", "frames", "scale", "focal", "principal", "q0", "beta_prev", "sample_idx",
        "sample_w", "gram_chol", "contour", "delta_h", "base_h", "identity_h", "expression_h", "expression_sigma",
        "lines_idx", "lines_w", "corrective", "term_data", "term_constants",
    ]
)
class FitData:
    """Everything a term may read (a pytree; per-face fields first, then per-topology constants).

    Per face: landmarks ``(68, 2)`` px (0 where missing); mask ``(68,)`` weights (0 = missing);
    frames ``(68, 2, 2)`` residual metrics (:func:`~digitaltwin_jax.energies.landmarks.contour_frames`);
    scale ``()`` 100 / W_eye; focal ``()`` f = max(h, w); principal ``(2,)`` (w/2, h/2);
    q0 ``(4,)`` the initial (EPnP) rotation; beta_prev ``(M,)`` beta^{t-1};
    sample_idx ``(68, 3)`` handle-local vertex indices and sample_w ``(68, 3)`` barycentric weights of
    the current landmark samples (jaw points change every iteration); gram_chol ``(68, 68)`` the
    Cholesky factor of the corrective term's G for these samples (see
    :func:`~digitaltwin_jax.energies.corrective.gram_cholesky`); contour ``(17,) int32`` the current
    candidate on each jaw line; delta_h ``(H, 3)`` deltaP at
    the handles; base_h ``(H, 3)`` the shape P at the handles.
    Per topology: identity_h ``(K, H, 3)``, expression_h ``(M, H, 3)``, expression_sigma ``(M,)``,
    lines_idx / lines_w ``(17, C, 3)`` sliding-contour candidates (handle-local), corrective the
    :class:`~digitaltwin_jax.energies.corrective.CondensedCorrective`.
    Terms' own inputs: term_data ``{term name: per-face pytree}`` (batched by fit_batch) and
    term_constants ``{term name: pytree}`` (shared by the batch); a term reads them as
    :class:`TermInputs` (see :class:`~digitaltwin_jax.fitting.terms.Term`).
    """

    landmarks: Any
    mask: Any
    frames: Any
    scale: Any
    focal: Any
    principal: Any
    q0: Any
    beta_prev: Any
    sample_idx: Any
    sample_w: Any
    gram_chol: Any
    contour: Any
    delta_h: Any
    base_h: Any
    identity_h: Any
    expression_h: Any
    expression_sigma: Any
    lines_idx: Any
    lines_w: Any
    corrective: Any
    term_data: Any
    term_constants: Any


_PER_FACE = (
    "landmarks", "mask", "frames", "scale", "focal", "principal", "q0", "beta_prev", "sample_idx", "sample_w", "gram_chol",
    "contour", "delta_h", "base_h", "term_data",
)


@_dataclass_pytree(["face", "shared"])
class TermInputs:
    """A term's own inputs, the third argument of its function: ``face`` the per-face pytree
    (``Term.data``, one face's slice inside fit_batch) and ``shared`` the per-batch pytree
    (``Term.constants``); either may be None."""

    face: Any
    shared: Any



@_dataclass_pytree(["beta", "delta_p", "t", "q", "f_s", "alpha"])
class FitParams:
    """The paper's parameter vector p = [beta, deltaP, t, q, f_s] (+ alpha, our extension).

    Attributes: beta ``(M,)`` in beta_bounds; delta_p ``(V, 3)`` mm; t ``(3,)`` mm; q ``(4,)`` unit
    wxyz; f_s ``()``; alpha ``(K,)`` (K = 0 unless fit_identity).  Leading batch axes from fit_batch.
    """

    beta: Any
    delta_p: Any
    t: Any
    q: Any
    f_s: Any
    alpha: Any


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Output of :func:`fit` (numpy float32; :func:`fit_batch` adds a leading batch axis to all).

    Attributes:
      params: :class:`FitParams`.
      vertices: ``(V, 3)`` fitted mesh P_F in the head frame (mm).
      vertices_camera: ``(V, 3)`` the same in the OpenCV camera frame.
      landmarks_2d: ``(68, 2)`` projected landmark samples (jaw points at their slid positions).
      reprojection_errors: ``(68,)`` pixel distance to the input landmarks (NaN where missing).
      landmark_indices, landmark_weights: ``(68, 3)`` the final landmark samples (vertex ids,
        barycentric weights).
      energy: ``(N + 1,)`` E before each iteration and at the end.
      step_sizes: ``(N,)`` the solver's step length per iteration (0 = no decrease found).
      energy_terms: ``{name: ()}`` weighted final energy of each term.
      intrinsics: ``(3, 3)`` K.
      success: bool, finite result.
    """

    params: FitParams
    vertices: np.ndarray
    vertices_camera: np.ndarray
    landmarks_2d: np.ndarray
    reprojection_errors: np.ndarray
    landmark_indices: np.ndarray
    landmark_weights: np.ndarray
    energy: np.ndarray
    step_sizes: np.ndarray
    energy_terms: dict
    intrinsics: np.ndarray
    success: np.ndarray
