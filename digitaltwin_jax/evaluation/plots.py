"""ARMSE-versus-crop-radius plots (paper section 4.3, figures 3 and 4a).

:func:`plot_armse_curves` draws one line per method (ARMSE against the crop radius ``d``), with
optional error bars; :func:`mean_and_ci95` turns per-subject ARMSE values into the mean and the
``1.96 x standard error`` half-width the paper's figure 4 uses.  Matplotlib's Agg canvas is used
directly (no pyplot state); PNGs are written atomically.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from digitaltwin_jax.evaluation.heatmap import _atomic_write

__all__ = ["mean_and_ci95", "plot_armse_curves"]


def mean_and_ci95(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width (``1.96 * SE``, SE = sample std / sqrt(n)) over subjects.

    Args:
      values: ``(S, R) float`` ARMSE of S subjects at R radii (NaN entries are ignored).

    Returns:
      ``(mean (R,), half_width (R,))`` float64; half-width is 0 where fewer than 2 values exist.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must have shape (S, R) with S >= 1, got {x.shape}")
    cnt = np.isfinite(x).sum(0)
    if (cnt == 0).any():
        raise ValueError("a radius has no finite value")
    mean = np.nanmean(x, axis=0)
    sd = np.array([np.nanstd(x[:, j], ddof=1) if cnt[j] > 1 else 0.0 for j in range(x.shape[1])])
    return mean, 1.96 * sd / np.sqrt(cnt)


def plot_armse_curves(
    path,
    radii: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    errors: Mapping[str, Sequence[float]] | None = None,
    ylabel: str = "ARMSE (mm)",
    xlabel: str = "crop radius d (mm)",
    title: str | None = None,
    size_px: tuple[int, int] = (640, 480),
):
    """Plot ARMSE against crop radius for several methods and write a PNG atomically.

    Args:
      path: output ``.png``.
      radii: ``(R,)`` crop radii (x axis).
      curves: method name -> ``(R,)`` ARMSE values.
      errors: optional method name -> ``(R,)`` error-bar half-widths (e.g. from :func:`mean_and_ci95`).
      ylabel, xlabel, title: axis labels / title (use ``ylabel="ARMSE (% IOD)"`` for per-cent curves).
      size_px: ``(width, height)`` in pixels.

    Returns:
      The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    r = np.asarray(radii, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.isfinite(r).all():
        raise ValueError(f"radii must be a non-empty 1-D finite sequence, got shape {r.shape}")
    if not curves:
        raise ValueError("curves is empty")
    data = {}
    for name, ys in curves.items():
        y = np.asarray(ys, dtype=np.float64)
        if y.shape != r.shape:
            raise ValueError(f"curve {name!r} has shape {y.shape}, expected {r.shape} (one value per radius)")
        data[name] = y
    errs = {}
    for name, es in (errors or {}).items():
        if name not in data:
            raise ValueError(f"errors given for unknown curve {name!r}")
        e = np.asarray(es, dtype=np.float64)
        if e.shape != r.shape or (e < 0).any():
            raise ValueError(f"errors for {name!r} must be non-negative with shape {r.shape}")
        errs[name] = e
    dpi = 100
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, y in data.items():
        if name in errs:
            ax.errorbar(r, y, yerr=errs[name], marker="o", capsize=4, label=name)
        else:
            ax.plot(r, y, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(r)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
