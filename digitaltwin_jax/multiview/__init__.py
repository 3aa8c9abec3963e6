"""Several photos of one person (issue 16): the shared-shape multi-view fit (:mod:`.fit`)."""
from __future__ import annotations

from digitaltwin_jax.multiview.fit import MultiFitConfig, MultiViewFit, fit_views

__all__ = ["MultiFitConfig", "MultiViewFit", "fit_views"]
