"""The generic head model (paper section 3.2): the shipped ICT-derived asset as a :class:`HeadModel`
pytree, :func:`head_shape` (eq. of P_F without the corrective field) and the asset build
(``build_ict``: the ICT converter; ``resample``: the low mesh's decimation; ``low_asset``: its masks
and quality statistics; ``visibility``: the outer-surface test; ``atlas``, ``openings``)."""
from digitaltwin_jax.model.head_model import RESOLUTIONS, HeadModel, head_shape, load_head_model

__all__ = ["HeadModel", "load_head_model", "head_shape", "RESOLUTIONS"]
