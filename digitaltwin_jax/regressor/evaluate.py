"""Held-out evaluation of shape sources (paper section 4.3 protocol, Fig. 3/6 style curves).

For every test image with a known neutral head (synthetic renders of heads never seen in
training), each *method* predicts a neutral head in the model topology:

* ``mean``: the model's mean head;
* ``landmark_fit``: identity coefficients fitted to the 68 detected landmarks
  (``fitting.fit(..., FitConfig(fit_identity=True))``), expression removed;
* ``regressor``: the decoder applied to the image's identity embedding;
* ``regressor+fit``: the regressed shape refined by the non-rigid fit (section 3.4), expression removed.

The fitted heads keep the per-vertex corrective field (that is what the avatar gets).  Errors are
ARMSE (mm) after the 7-landmark similarity + ICP alignment, cropped at radius d around the
ground-truth nose tip (:func:`digitaltwin_jax.evaluation.evaluate_model_prediction`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

__all__ = ["EvalData", "METHODS", "RADII", "predict", "armse_table", "summarise", "markdown_table"]

METHODS = ("mean", "landmark_fit", "regressor", "regressor+fit")
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
    """

    vertices: np.ndarray
    embeddings: np.ndarray
    landmarks: np.ndarray
    image_sizes: np.ndarray
    sample_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.vertices.shape[0])

    def valid(self) -> np.ndarray:
        """``(N,) bool``: items where the front end found a face."""
        return np.all(np.isfinite(self.embeddings), axis=1) & np.all(np.isfinite(self.landmarks), axis=(1, 2))


def _neutral(fit_result, model) -> np.ndarray:
    beta = np.asarray(fit_result.params.beta, np.float64)
    v = np.asarray(fit_result.vertices, np.float64)
    return (v - np.tensordot(beta, np.asarray(model.expression_basis, np.float64), axes=1)).astype(np.float32)


def predict(model, data: EvalData, regressor: Callable | None, methods=METHODS, progress: bool = True) -> dict:
    """Predicted neutral heads ``{method: (N, V, 3) float32}`` (NaN for items without a face).

    Args:
      model: the :class:`HeadModel` (the regressor's resolution).
      data: the test items.
      regressor: ``embeddings (B, D) -> (B, V, 3)`` (a :class:`~.weights.Regressor`), needed for the
        regressor methods.
    """
    from tqdm.auto import tqdm

    from digitaltwin_jax.fitting import FitConfig, fit, prepare

    n = len(data)
    ok = data.valid()
    out = {m: np.full((n, model.num_vertices, 3), np.nan, np.float32) for m in methods}
    reg = None
    if any(m.startswith("regressor") for m in methods):
        if regressor is None:
            raise ValueError("a regressor is needed for the regressor methods")
        reg = np.full((n, model.num_vertices, 3), np.nan, np.float32)
        if ok.any():
            reg[ok] = np.asarray(regressor(data.embeddings[ok]), np.float32)
    if "mean" in methods:
        out["mean"][ok] = model.vertices
    if "regressor" in methods:
        out["regressor"] = reg
    cfg_id = FitConfig(fit_identity=True)
    cfg_rf = FitConfig()
    prob_id = prepare(model, cfg_id) if "landmark_fit" in methods else None
    prob_rf = prepare(model, cfg_rf) if "regressor+fit" in methods else None
    for i in tqdm(np.flatnonzero(ok), desc="fits", disable=not progress):
        hw = tuple(int(x) for x in data.image_sizes[i])
        if "landmark_fit" in methods:
            r = fit(model, data.landmarks[i], hw, config=cfg_id, problem=prob_id)
            out["landmark_fit"][i] = _neutral(r, model)
        if "regressor+fit" in methods:
            r = fit(model, data.landmarks[i], hw, shape=reg[i], config=cfg_rf, problem=prob_rf)
            out["regressor+fit"][i] = _neutral(r, model)
    return out


def armse_table(model, gt_vertices, predictions: Mapping[str, np.ndarray], radii=RADII, progress: bool = True) -> dict:
    """``{method: (N, R) float64}`` ARMSE in mm (NaN where the prediction is NaN)."""
    from tqdm.auto import tqdm

    from digitaltwin_jax.evaluation import EvaluationConfig, evaluate_model_prediction

    cfg = EvaluationConfig(radii=tuple(float(r) for r in radii))
    faces = np.asarray(model.faces)
    lm_idx = np.asarray(model.eval_landmark_indices)
    res = {}
    for name, pred in predictions.items():
        arr = np.full((len(gt_vertices), len(radii)), np.nan)
        for i in tqdm(range(len(gt_vertices)), desc=f"ARMSE {name}", disable=not progress):
            if not np.all(np.isfinite(pred[i])):
                continue
            gt = np.asarray(gt_vertices[i], np.float64)
            r = evaluate_model_prediction(
                model, pred[i], gt, faces, gt[lm_idx], gt_center=gt[int(model.nose_tip_index)], config=cfg
            )
            arr[i] = [x.armse for x in r.armse]
        res[name] = arr
    return res


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
