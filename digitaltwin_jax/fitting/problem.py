"""Problem preparation: the per-topology constants (:class:`FitProblem`, :func:`prepare`, cached) and
each face's data (:class:`~digitaltwin_jax.fitting.variables.FitData` fields, initial variables)."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from digitaltwin_jax.energies import corrective as corr
from digitaltwin_jax.energies import landmarks as lmk
from digitaltwin_jax.fitting.config import FitConfig
from digitaltwin_jax.fitting.init import initial_pose
from digitaltwin_jax.fitting.inputs import _base_shape, _check_image_size, _check_landmarks
from digitaltwin_jax.fitting.variables import FitVariables, _dataclass_pytree
from digitaltwin_jax.geometry.laplacian import normalized_laplacian
from digitaltwin_jax.geometry.rotations import quaternion_to_matrix
from digitaltwin_jax.model.head_model import HeadModel

__all__ = ["FitProblem", "prepare"]


@_dataclass_pytree(
    [
        "handles", "fixed_idx", "fixed_w", "lines_idx", "lines_w", "identity_h", "expression_h", "corrective",
        "mean", "identity_full", "expression_full",
    ],
    ["num_vertices"],
)
class FitProblem:
    """Per-topology constants of the structured problem (build with :func:`prepare`).

    Attributes:
      handles: ``(H,) int32`` every vertex a landmark sample can touch (sorted).
      fixed_idx, fixed_w: ``(68, 3)`` handle-local barycentric form of ``model.landmark_indices``.
      lines_idx, lines_w: ``(17, C, 3)`` handle-local sliding-contour candidates.
      identity_h: ``(K, H, 3)``; expression_h: ``(M, H, 3)`` bases at the handles.
      corrective: :class:`~digitaltwin_jax.energies.corrective.CondensedCorrective` or None.
      mean, identity_full, expression_full: ``(V, 3)``, ``(K, V, 3)``, ``(M, V, 3)`` the model for
        the full-mesh output.
      num_vertices: V.
    Index arrays are numpy; float arrays are float64 JAX arrays (made once, reused by every fit).
    """

    handles: Any
    fixed_idx: Any
    fixed_w: Any
    lines_idx: Any
    lines_w: Any
    identity_h: Any
    expression_h: Any
    corrective: Any
    mean: Any
    identity_full: Any
    expression_full: Any
    num_vertices: int


_PROBLEM_CACHE: dict = {}


def _problem_key(model: HeadModel, config: FitConfig, corrective: bool):
    k = min(config.num_identity, model.num_identity) if config.fit_identity else 0
    return (id(model), k, corrective, config.lambda_delta, config.laplacian, config.contour_points)


def prepare(model: HeadModel, config: FitConfig = FitConfig(), *, corrective: bool | None = None) -> FitProblem:
    """Precompute the per-topology constants (numpy float64; ~1 s at 11K vertices, less at 3K).

    :func:`fit` calls this itself and memoises the result per model object and the config fields it
    depends on (``num_identity``, ``fit_identity``, ``lambda_delta``, ``laplacian``,
    ``contour_points``) and whether the corrective condensation is needed (``corrective``: default
    ``config.fit_corrective``; :func:`fit` passes whether its terms include the corrective term);
    call it yourself to control when the cost is paid.
    """
    corrective = config.fit_corrective if corrective is None else bool(corrective)
    key = _problem_key(model, config, corrective)
    hit = _PROBLEM_CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    fixed_idx, fixed_w = lmk.fixed_samples(model.landmark_indices)
    lines = lmk.contour_lines(
        model.vertices, model.faces, model.landmark_indices, model.contour_candidates, model.outer_surface_mask,
        max_points=config.contour_points,
    )
    handles = np.unique(np.concatenate([fixed_idx.ravel(), lines.indices.ravel()])).astype(np.int32)
    k = key[1]
    cc = None
    if corrective:
        lap = normalized_laplacian(model.vertices, model.faces, config.laplacian)
        cc = _condensed(lap, model.expression_basis, handles, config.lambda_delta)
    with jax.enable_x64(True):
        dev = functools.partial(jnp.asarray, dtype=jnp.float64)
        if cc is not None:
            cc = dataclasses.replace(
                cc, ainv_hh=dev(cc.ainv_hh), y_h=dev(cc.y_h), r_q=dev(cc.r_q),
                system=corr.EllMatrix(jnp.asarray(cc.system.cols), dev(cc.system.vals)),
            )
        problem = FitProblem(
            handles=handles,
            fixed_idx=np.searchsorted(handles, fixed_idx).astype(np.int32),
            fixed_w=fixed_w.astype(np.float64),
            lines_idx=np.searchsorted(handles, lines.indices).astype(np.int32),
            lines_w=lines.weights.astype(np.float64),
            identity_h=dev(model.identity_basis[:k][:, handles]),
            expression_h=dev(model.expression_basis[:, handles]),
            corrective=cc,
            mean=dev(model.vertices),
            identity_full=dev(model.identity_basis[:k]),
            expression_full=dev(model.expression_basis),
            num_vertices=model.num_vertices,
        )
    if len(_PROBLEM_CACHE) >= 8:
        _PROBLEM_CACHE.pop(next(iter(_PROBLEM_CACHE)))
    _PROBLEM_CACHE[key] = (model, problem)
    return problem


def _condensed(lap, basis, handles, lambda_delta: float) -> corr.CondensedCorrective:
    """:func:`~digitaltwin_jax.energies.corrective.condense_corrective`, kept on disk by the fit's
    store when it has a folder (:func:`.exported.arrays`; the command line's cache)."""
    from digitaltwin_jax.fitting import exported

    lap = lap.tocsr()

    def make():
        cc = corr.condense_corrective(lap, basis, handles, lambda_delta)
        return dict(ainv_hh=cc.ainv_hh, y_h=cc.y_h, r_q=cc.r_q, cols=np.asarray(cc.system.cols),
                    vals=np.asarray(cc.system.vals), lambda_delta=np.float64(cc.lambda_delta),
                    num_cg=np.int64(cc.num_cg))

    d = exported.arrays("condensed", (lap.indptr, lap.indices, lap.data, basis, handles, float(lambda_delta)), make)
    return corr.CondensedCorrective(ainv_hh=d["ainv_hh"], y_h=d["y_h"], r_q=d["r_q"],
                                    system=corr.EllMatrix(d["cols"], d["vals"]),
                                    lambda_delta=float(d["lambda_delta"]), num_cg=int(d["num_cg"]))


# ------------------------------------------------------------------------------------ per face


def _face_inputs(model, problem: FitProblem, config, landmarks_2d, image_size, shape, landmark_weights):
    """numpy per-face FitData fields and initial variables."""
    h, w = _check_image_size(image_size)
    lm, valid = _check_landmarks(landmarks_2d)
    base = _base_shape(model, shape)
    q0, t0 = initial_pose(model, lm, (h, w), base, config)
    weights = np.ones(68)
    weights[:17] = config.jaw_weight
    if landmark_weights is not None:
        lw = np.asarray(landmark_weights, np.float64)
        if lw.shape != (68,) or not np.all(np.isfinite(lw)) or np.any(lw < 0):
            raise ValueError("landmark_weights must be (68,) finite and >= 0")
        weights = weights * lw
    mask = np.where(valid, weights, 0.0)
    focal = float(max(h, w))
    principal = np.array([w / 2.0, h / 2.0])
    w_eye = lmk.eye_distance(lm)
    if not np.isfinite(w_eye) or w_eye < 1.0:  # fall back to the projected model's outer eye corners
        pr = np.asarray(quaternion_to_matrix(jnp.asarray(q0, jnp.float32)), np.float64)
        eyes = base[np.asarray(model.landmark_indices)[[lmk.RIGHT_EYE_OUTER, lmk.LEFT_EYE_OUTER]]] @ pr.T + t0
        px = focal * eyes[:, :2] / eyes[:, 2:3]
        w_eye = float(np.linalg.norm(px[0] - px[1]))
    m = problem.expression_h.shape[0]
    k = problem.identity_h.shape[0]
    nh = problem.handles.shape[0]
    data = dict(
        landmarks=np.where(valid[:, None], lm, 0.0),
        mask=mask,
        frames=lmk.contour_frames(lm, config.jaw_tangent_weight),
        scale=np.float64(100.0 / w_eye),
        focal=np.float64(focal),
        principal=principal,
        q0=q0,
        beta_prev=np.zeros(m),
        sample_idx=problem.fixed_idx,
        sample_w=problem.fixed_w,
        gram_chol=np.eye(68),
        contour=np.zeros(17, np.int32),
        delta_h=np.zeros((nh, 3)),
        base_h=base[problem.handles],
    )
    v0 = FitVariables(
        beta=np.zeros(m), alpha=np.zeros(k), t=t0, q=q0, f_s=np.float64(1.0), offsets=np.zeros((68, 3))
    )
    return data, v0, (None if shape is None else base)


def _shared_data(problem: FitProblem, config: FitConfig, m: int) -> dict:
    return dict(
        identity_h=problem.identity_h,
        expression_h=problem.expression_h,
        expression_sigma=np.full((m,), config.expression_sigma),
        lines_idx=problem.lines_idx,
        lines_w=problem.lines_w,
        corrective=problem.corrective,
    )


def _term_inputs(terms, batch: int | None) -> tuple[dict, dict]:
    """``(term_data, term_constants)`` dicts of the terms' own inputs; checks that every leaf of a
    term's per-face data has the leading batch axis ``batch`` (None: one face, no axis)."""
    face, shared = {}, {}
    for t in terms:
        if t.data is not None:
            if batch is not None:
                for leaf in jax.tree_util.tree_leaves(t.data):
                    if np.ndim(leaf) < 1 or np.shape(leaf)[0] != batch:
                        raise ValueError(
                            f"term {t.name!r}: every leaf of its per-face data needs a leading batch axis of {batch}, "
                            f"got shape {np.shape(leaf)}"
                        )
            face[t.name] = t.data
        if t.constants is not None:
            shared[t.name] = t.constants
    return face, shared
