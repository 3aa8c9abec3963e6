"""Several photos of one person (issue 16): the shared-shape multi-view fit (:mod:`.fit`), its
starting shape and the checks on a group of photos (:mod:`.shape`), the detector's landmark offsets
(:mod:`.landmark_offsets`, a diagnostic: docs page "Several photos", Measurements)."""
from __future__ import annotations

from digitaltwin_jax.multiview.fit import MultiFitConfig, MultiViewFit, fit_views
from digitaltwin_jax.multiview.landmark_offsets import estimate_landmark_offsets
from digitaltwin_jax.multiview.shape import (SAME_PERSON_THRESHOLD, camera_groups, check_same_person, combined_shape,
                                             embedding_distances)

__all__ = ["MultiFitConfig", "MultiViewFit", "fit_views", "combined_shape", "check_same_person", "embedding_distances",
           "camera_groups", "SAME_PERSON_THRESHOLD", "estimate_landmark_offsets"]
