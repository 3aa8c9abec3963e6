"""``python -m digitaltwin_jax avatar PHOTO -o OUTDIR`` (see :mod:`digitaltwin_jax.cli`)."""
import sys

from digitaltwin_jax.cli import main

sys.exit(main())
