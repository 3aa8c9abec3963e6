"""Held-out evaluation of shape sources (paper section 4.3 protocol, Fig. 3/6 style curves).

For every test image with a known neutral head (synthetic renders of heads never seen in
training), each *method* predicts a neutral head in the model topology:

* ``mean``: the model's mean head;
* ``landmark_fit``: identity coefficients fitted to the 68 detected landmarks
  (``fitting.fit(..., FitConfig(fit_identity=True))``), expression removed;
* ``regressor``: the decoder applied to the image's identity embedding;
* ``regressor+fit``: the regressed shape refined by the non-rigid fit (section 3.4), expression removed;
* ``mean+fit``: the mean head refined by the non-rigid fit (pose, focal, expression, corrective field);
* ``guarded`` / ``guarded+fit``: the regressor's prediction pulled toward the mean head by the
  out-of-distribution guard (:mod:`.guard`), alone / followed by the fit.

:func:`predict_with_fits` also returns what each fit found (blendshape weights, focal, pose), for
the expression-activation and focal/pose-error rows of the fidelity benchmark.

The fitted heads keep the per-vertex corrective field (that is what the avatar gets).  Errors are
ARMSE (mm) after the 7-landmark similarity + ICP alignment, cropped at radius d around the
ground-truth nose tip (:func:`digitaltwin_jax.evaluation.evaluate_model_prediction`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

__all__ = ["EvalData", "METHODS", "ALL_METHODS", "MethodSpec", "FitSummary", "RADII", "predict",
           "predict_with_fits", "armse_table", "summarise", "markdown_table"]

METHODS = ("mean", "landmark_fit", "regressor", "regressor+fit")
ALL_METHODS = ("mean", "mean+fit", "landmark_fit", "regressor", "regressor+fit", "guarded", "guarded+fit",
               "corrected+fit", "calibrated+fit")
RADII = (80.0, 85.0, 90.0, 95.0, 100.0, 105.0, 110.0)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """Held-out test items.

    Attributes:
      vertices: ``(N, V, 3) float32`` ground-truth neutral heads (model topology, mm).
      embeddings: ``(N, D) float32`` identity embeddings of the test images (NaN rows: no face).
      landmarks: ``(N, 68, 2) float32`` detected landmarks, pixels (NaN rows: no face).
      image_sizes: ``(N, 2) int`` (h, w).
      sample_ids: ``(N,)`` str.
      K: optional ``(N, 3, 3)`` true intrinsics; rotation: optional ``(N, 3, 3)`` true camera rotation;
      expression: optional ``(N, M)`` true blendshape weights of the image (``vertices`` is neutral).
    """

    vertices: np.ndarray
    embeddings: np.ndarray
    landmarks: np.ndarray
    image_sizes: np.ndarray
    sample_ids: np.ndarray
    K: np.ndarray | None = None
    rotation: np.ndarray | None = None
    expression: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.vertices.shape[0])

    def valid(self) -> np.ndarray:
        """``(N,) bool``: items where the front end found a face."""
        return np.all(np.isfinite(self.embeddings), axis=1) & np.all(np.isfinite(self.landmarks), axis=(1, 2))


def _neutral(fit_result, model) -> np.ndarray:
    beta = np.asarray(fit_result.params.beta, np.float64)
    v = np.asarray(fit_result.vertices, np.float64)
    return (v - np.tensordot(beta, np.asarray(model.expression_basis, np.float64), axes=1)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """How a method predicts a neutral head.

    Attributes:
      shape: ``"mean"`` (the model's mean head), ``"identity"`` (identity coefficients fitted inside
        the Gauss-Newton solve), ``"regressor"`` or ``"guarded"`` (regressor + out-of-distribution guard).
      fit: the :class:`~digitaltwin_jax.fitting.FitConfig` of the non-rigid fit, or None for no fit
        (``"identity"`` needs a fit with ``fit_identity=True``).
    """

    shape: str
    fit: object = None


def _spec(name: str) -> MethodSpec:
    from digitaltwin_jax.fitting import FitConfig

    base, _, plus = name.partition("+")
    if name == "landmark_fit":
        return MethodSpec("identity", FitConfig(fit_identity=True))
    if base in ("mean", "regressor", "guarded") and plus in ("", "fit"):
        return MethodSpec(base, FitConfig() if plus else None)
    if base in ("corrected", "calibrated") and plus == "fit":  # the shipped shape prior (issue 27)
        return MethodSpec(base, FitConfig())
    raise ValueError(f"unknown method {name!r}; known: {ALL_METHODS} (or pass a MethodSpec)")


@dataclasses.dataclass(frozen=True)
class FitSummary:
    """What the non-rigid fit of one method found on every item (NaN rows: no face / no fit).

    Attributes:
      beta: ``(N, M) float32`` blendshape weights; focal_scale: ``(N,)`` f_s;
      intrinsics: ``(N, 3, 3)``; rotation: ``(N, 3, 3)`` camera rotation; landmark_rmse_px: ``(N,)``.
    """

    beta: np.ndarray
    focal_scale: np.ndarray
    intrinsics: np.ndarray
    rotation: np.ndarray
    landmark_rmse_px: np.ndarray


def predict(model, data: EvalData, regressor: Callable | None, methods=METHODS, progress: bool = True) -> dict:
    """Predicted neutral heads ``{method: (N, V, 3) float32}`` (NaN for items without a face).

    Args:
      model: the :class:`HeadModel` (the regressor's resolution).
      data: the test items.
      regressor: ``embeddings (B, D) -> (B, V, 3)`` (a :class:`~.weights.Regressor`), needed for the
        regressor methods.
      methods: names from :data:`ALL_METHODS`.
    """
    return predict_with_fits(model, data, regressor, methods, progress=progress)[0]


def predict_with_fits(model, data: EvalData, regressor: Callable | None, methods=METHODS, *, guard=None,
                      progress: bool = True) -> tuple[dict, dict]:
    """:func:`predict` and the fits' findings.

    Args:
      methods: names from :data:`ALL_METHODS`, or a mapping ``{name: MethodSpec}``.
      guard: the :class:`~.guard.OODGuard` of the ``guarded`` methods (default: the shipped one).

    Returns:
      ``({method: (N, V, 3) float32 neutral heads}, {method with a fit: FitSummary})``.
    """
    from tqdm.auto import tqdm

    from digitaltwin_jax.fitting import fit, prepare
    from digitaltwin_jax.geometry.rotations import quaternion_to_matrix

    specs = dict(methods) if isinstance(methods, Mapping) else {m: _spec(m) for m in methods}
    n, nv = len(data), model.num_vertices
    ok = data.valid()
    shapes = {"mean": np.broadcast_to(np.asarray(model.vertices, np.float32), (n, nv, 3))}
    if any(s.shape in ("regressor", "guarded") for s in specs.values()):
        if regressor is None:
            raise ValueError("a regressor is needed for the regressor methods")
        reg = np.full((n, nv, 3), np.nan, np.float32)
        if ok.any():
            reg[ok] = np.asarray(regressor(data.embeddings[ok]), np.float32)
        shapes["regressor"] = reg
        if any(s.shape == "guarded" for s in specs.values()):
            if guard is None:
                from digitaltwin_jax.regressor.guard import load_guard

                guard = load_guard()
            g = np.full((n, nv, 3), np.nan, np.float32)
            if ok.any():
                g[ok] = guard.apply(model.vertices, reg[ok], data.embeddings[ok])
            shapes["guarded"] = g
    priors = None
    if any(s.shape in ("corrected", "calibrated") for s in specs.values()):
        from digitaltwin_jax.shape_prior.source import CalibratedShapeSource

        src = CalibratedShapeSource(guard=guard)
        shapes["corrected"] = np.broadcast_to(src.prior.template_vertices(model), (n, nv, 3))
        priors = [src.identity_prior(data.embeddings[i], model) if ok[i] else None for i in range(n)]
    out, fits = {}, {}
    for name, spec in specs.items():
        if spec.shape not in ("mean", "identity", "regressor", "guarded", "corrected", "calibrated"):
            raise ValueError(f"method {name!r}: unknown shape {spec.shape!r}")
        if spec.fit is None:
            if spec.shape == "identity":
                raise ValueError(f"method {name!r}: the identity shape needs a fit")
            pred = np.full((n, nv, 3), np.nan, np.float32)
            pred[ok] = shapes[spec.shape][ok]
            out[name] = pred
            continue
        if spec.shape == "identity" and not spec.fit.fit_identity:
            raise ValueError(f"method {name!r}: the identity shape needs FitConfig(fit_identity=True)")
        problem = prepare(model, spec.fit)
        m = model.expression_basis.shape[0]
        pred = np.full((n, nv, 3), np.nan, np.float32)
        fs = FitSummary(np.full((n, m), np.nan, np.float32), np.full(n, np.nan), np.full((n, 3, 3), np.nan),
                        np.full((n, 3, 3), np.nan), np.full(n, np.nan))
        for i in tqdm(np.flatnonzero(ok), desc=f"fits {name}", disable=not progress, leave=False):
            hw = tuple(int(x) for x in data.image_sizes[i])
            shape = None if spec.shape == "identity" else (None if spec.shape == "mean" else shapes.get(spec.shape, [None] * n)[i])
            cfg, lw, prob = spec.fit, None, problem
            if spec.shape == "calibrated":  # identity fitted around the item's prior centre, under its width
                shape, cfg, lw, prob = priors[i].centre, priors[i].fit_config(spec.fit), priors[i].landmark_weights, None
            try:
                r = fit(model, data.landmarks[i], hw, shape=shape, config=cfg, landmark_weights=lw, problem=prob)
            except ValueError:  # degenerate landmarks: counted as a failure of this method
                continue
            if not bool(np.all(r.success)):
                continue
            pred[i] = _neutral(r, model)
            fs.beta[i] = np.asarray(r.params.beta, np.float32)
            fs.focal_scale[i] = float(np.asarray(r.params.f_s))
            fs.intrinsics[i] = np.asarray(r.intrinsics, np.float64)
            fs.rotation[i] = np.asarray(quaternion_to_matrix(np.asarray(r.params.q, np.float64)))
            e = np.asarray(r.reprojection_errors, np.float64)
            e = e[np.isfinite(e)]
            fs.landmark_rmse_px[i] = float(np.sqrt(np.mean(e ** 2))) if e.size else np.nan
        out[name] = pred
        fits[name] = fs
    return out, fits


def armse_table(model, gt_vertices, predictions: Mapping[str, np.ndarray], radii=RADII, progress: bool = True) -> dict:
    """``{method: (N, R) float64}`` ARMSE in mm (NaN where the prediction is NaN); one
    :func:`digitaltwin_jax.evaluation.fidelity.score_heads` per method."""
    from digitaltwin_jax.evaluation.fidelity import score_heads

    return {name: score_heads(model, gt_vertices, pred, radii=radii, progress=progress).armse_mm
            for name, pred in predictions.items()}


def summarise(table: Mapping[str, np.ndarray], radii=RADII) -> dict:
    """``{method: {"radii", "mean", "ci95", "n"}}``: mean ARMSE per radius and its 1.96 SE half-width
    over the items every method could handle."""
    arrays = list(table.values())
    common = np.all([np.all(np.isfinite(a), axis=1) for a in arrays], axis=0)
    out = {}
    for name, a in table.items():
        x = a[common]
        n = x.shape[0]
        se = x.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(x.shape[1], np.nan)
        out[name] = {
            "radii": [float(r) for r in radii],
            "mean": [float(v) for v in x.mean(axis=0)] if n else [float("nan")] * len(radii),
            "ci95": [float(v) for v in 1.96 * se],
            "n": int(n),
        }
    return out


def markdown_table(summary: Mapping[str, dict], labels: Mapping[str, str] | None = None) -> str:
    """A markdown table: rows = methods, columns = radii, cells ``mean ± ci95`` (mm)."""
    labels = labels or {}
    names = list(summary)
    radii = summary[names[0]]["radii"]
    head = "| method | " + " | ".join(f"d = {r:g}" for r in radii) + " |"
    sep = "|---|" + "---|" * len(radii)
    rows = [head, sep]
    for m in names:
        s = summary[m]
        cells = [f"{mu:.2f} ± {ci:.2f}" for mu, ci in zip(s["mean"], s["ci95"])]
        rows.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
