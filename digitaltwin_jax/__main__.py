"""``python -m digitaltwin_jax avatar PHOTO -o OUTDIR`` (see :mod:`digitaltwin_jax.cli`)."""
from digitaltwin_jax.cli import run

run()
