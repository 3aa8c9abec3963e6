"""Out-of-distribution guard of the shape regressor (issue "regressor on real photos", item 3).

The decoder only knows the region of embedding space its training renders covered.  For an
embedding far from that region its prediction keeps a useful *direction* but overshoots in
*magnitude*, so the guard pulls the prediction toward the template (mean) head by a factor that
depends only on how far the embedding lies from the training embeddings:

    m = Mahalanobis distance of the embedding to the training embeddings (Ledoit-Wolf covariance)
    s(m) = 1                                   if m <= m_ref
         = (m_ref / m) ** power * taper(m)     otherwise
    taper(m) = clip((1.25 m_max - m) / (0.25 m_max), 0, 1)
    P = P_mean + s(m) (P_regressor - P_mean)

``m_ref`` is the 95th percentile of ``m`` over held-out in-distribution renders (the region the
regressor was trained and validated on); ``power`` is calibrated on an out-of-distribution synthetic
set that the benchmark does not report on (:func:`calibrate_power`); ``power = inf`` means "template
beyond m_ref".  ``m_max`` is the 95th percentile of the calibration set's distances: beyond it there
is no evidence that the prediction helps, so the guard fades to the template (s = 0 from
``1.25 m_max`` on) instead of extrapolating.  The guard is stored next to the shipped weights as ``guard.npz`` + ``guard.json``
(provenance: which sets, seeds, counts and the calibration curve).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from digitaltwin_jax.evaluation.fidelity import EmbeddingStats, fit_embedding_stats, mahalanobis

__all__ = ["OODGuard", "make_guard", "calibrate_power", "save_guard", "load_guard", "GUARD_FILE", "GUARD_RECORD"]

GUARD_FILE = "guard.npz"
GUARD_RECORD = "guard.json"


@dataclasses.dataclass(frozen=True)
class OODGuard:
    """Shrinks regressor predictions toward the template as a function of embedding distance.

    Attributes:
      stats: :class:`~digitaltwin_jax.evaluation.fidelity.EmbeddingStats` of the training embeddings.
      m_ref: Mahalanobis radius inside which predictions are kept as they are.
      power: decay exponent beyond ``m_ref`` (``inf``: the template beyond ``m_ref``; 0: no decay).
      m_max: end of the calibrated range (``inf``: no fade to the template).
      record: provenance (JSON-serialisable).
    """

    stats: EmbeddingStats
    m_ref: float
    power: float
    m_max: float = math.inf
    record: dict = dataclasses.field(default_factory=dict)

    def distance(self, embeddings) -> np.ndarray:
        """``(N,)`` Mahalanobis distances of ``(N, D)`` embeddings."""
        return mahalanobis(self.stats, np.atleast_2d(np.asarray(embeddings, np.float64)))

    def factor(self, embeddings) -> np.ndarray:
        """``(N,)`` shrink factors ``s(m)`` in [0, 1]."""
        return shrink_factor(self.distance(embeddings), self.m_ref, self.power, self.m_max)

    def apply(self, template, predictions, embeddings) -> np.ndarray:
        """``(N, V, 3) float32`` guarded predictions.

        Args:
          template: ``(V, 3)`` mean head; predictions: ``(N, V, 3)``; embeddings: ``(N, D)``.
        """
        p = np.asarray(predictions, np.float64)
        t = np.asarray(template, np.float64)
        s = self.factor(embeddings)
        return (t[None] + s[:, None, None] * (p - t[None])).astype(np.float32)


def shrink_factor(m, m_ref: float, power: float, m_max: float = math.inf) -> np.ndarray:
    """``s(m)`` of the module docstring, elementwise (NaN distances give NaN)."""
    m = np.asarray(m, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if math.isinf(power):
            s = np.where(m <= m_ref, 1.0, 0.0)
        else:
            s = np.where(m <= m_ref, 1.0, (m_ref / np.maximum(m, 1e-300)) ** float(power))
        if math.isfinite(m_max):
            s = s * np.clip((1.25 * m_max - m) / (0.25 * m_max), 0.0, 1.0)
    return np.where(np.isfinite(m), s, np.nan)


def make_guard(train_embeddings, heldout_embeddings, power: float = 0.0, *, quantile: float = 0.95,
               m_max: float = math.inf, record: dict | None = None) -> OODGuard:
    """Fit the embedding statistics on ``train_embeddings (N, D)`` and set ``m_ref`` to the
    ``quantile`` of the Mahalanobis distances of ``heldout_embeddings (M, D)`` (renders of the same
    distribution that the statistics did not see)."""
    stats = fit_embedding_stats(train_embeddings)
    m = mahalanobis(stats, np.asarray(heldout_embeddings, np.float64))
    m = m[np.isfinite(m)]
    if m.size < 5:
        raise ValueError(f"need at least 5 finite held-out embeddings, got {m.size}")
    return OODGuard(stats, float(np.quantile(m, quantile)), float(power), float(m_max), dict(record or {}))


def calibrate_power(distances, factors, errors, m_ref: float,
                    powers=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf)) -> tuple[float, dict]:
    """Choose ``power`` minimising the mean error on a calibration set.

    Args:
      distances: ``(N,)`` Mahalanobis distances of the calibration items.
      factors: ``(S,)`` shrink factors at which the errors were measured (must include 0 and 1).
      errors: ``(N, S)`` error (e.g. ARMSE, mm) of ``template + factor (prediction - template)``.
      m_ref: the guard's radius; powers: candidates.

    Returns:
      ``(best power, {str(power): mean error})``; errors at each item's ``s(m)`` are interpolated
      linearly between the measured factors.
    """
    d = np.asarray(distances, np.float64)
    f = np.asarray(factors, np.float64)
    e = np.asarray(errors, np.float64)
    if e.shape != (d.size, f.size) or not (np.isclose(f.min(), 0) and np.isclose(f.max(), 1)):
        raise ValueError("errors must be (N, S) with factors spanning [0, 1]")
    order = np.argsort(f)
    f, e = f[order], e[:, order]
    ok = np.isfinite(d) & np.all(np.isfinite(e), axis=1)
    curve = {}
    for p in powers:
        s = shrink_factor(d[ok], m_ref, p)  # inside the calibration range: no fade
        curve[str(p)] = float(np.mean([np.interp(si, f, ei) for si, ei in zip(s, e[ok])]))
    best = min(powers, key=lambda p: (curve[str(p)], -p if math.isfinite(p) else -1e9))
    return float(best), curve


def save_guard(guard: OODGuard, folder) -> None:
    """Write ``guard.npz`` + ``guard.json`` into ``folder`` (atomically)."""
    import io

    from digitaltwin_jax.io.atomic import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    buf = io.BytesIO()
    np.savez(buf, mean=guard.stats.mean.astype(np.float64), precision=guard.stats.precision.astype(np.float64))
    atomic_write_bytes(folder / GUARD_FILE, buf.getvalue())
    inf = lambda x: x if math.isfinite(x) else "inf"  # noqa: E731 - JSON has no infinity
    rec = dict(guard.record, m_ref=guard.m_ref, power=inf(guard.power), m_max=inf(guard.m_max),
               n=guard.stats.n, shrinkage=guard.stats.shrinkage)
    atomic_write_text(folder / GUARD_RECORD, json.dumps(rec, indent=2))


def load_guard(folder=None) -> OODGuard:
    """The guard saved in ``folder`` (default: the shipped regressor's folder).

    Raises:
      FileNotFoundError: no ``guard.npz`` / ``guard.json`` there.
    """
    from digitaltwin_jax.regressor.weights import shipped_regressor_dir

    folder = shipped_regressor_dir() if folder is None else Path(folder)
    for name in (GUARD_FILE, GUARD_RECORD):
        if not (folder / name).exists():
            raise FileNotFoundError(f"regressor guard file {folder / name} is missing")
    rec = json.loads((folder / GUARD_RECORD).read_text())
    with np.load(folder / GUARD_FILE) as z:
        stats = EmbeddingStats(z["mean"], z["precision"], int(rec.get("n", 0)), float(rec.get("shrinkage", 0.0)))
    num = lambda x: math.inf if x == "inf" else float(x)  # noqa: E731
    return OODGuard(stats, float(rec["m_ref"]), num(rec["power"]), num(rec.get("m_max", "inf")), rec)
